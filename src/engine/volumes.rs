//! What backups and restores need of the engine: a project's named volumes, recreating one as
//! it was, helper containers that mount a volume or a host path for the archive endpoint, and
//! running a hook's command in a service's container. Every request is bounded like the rest of
//! the engine's.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Result, anyhow};
use futures_util::{Stream, StreamExt};

use super::{ByteStream, Engine, project_filter};

/// The image of the containers composectl creates to read and write volumes and host paths
/// through the engine's archive endpoint (never started: no process, no network). Imported
/// from an empty archive, so nothing is pulled; `.invalid` keeps any registry out of it.
const HELPER_IMAGE: &str = "composectl.invalid/empty:1";
/// Where a helper container has its one mount.
pub const HELPER_MOUNT: &str = "/composectl/data";

/// A named volume of a compose project, as the engine has it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VolumeInfo {
    pub name: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

/// What a helper container mounts at [`HELPER_MOUNT`].
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Volume(&'a str),
    /// An absolute host path.
    Path(&'a std::path::Path),
}

impl Engine {
    /// The named volumes compose created for `project` (external ones are not its own).
    pub async fn volumes(&self, project: &str) -> Result<Vec<VolumeInfo>> {
        let options = bollard::query_parameters::ListVolumesOptions {
            filters: Some(project_filter(Some(project))),
        };
        let list = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(|e| anyhow!("cannot list volumes: {e}"))?;
        let mut volumes: Vec<VolumeInfo> = list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| VolumeInfo {
                name: v.name,
                driver: v.driver,
                labels: v.labels.into_iter().collect(),
                options: v.options.into_iter().collect(),
            })
            .collect();
        volumes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(volumes)
    }

    /// Creates `volume` empty, as it was (driver, options, compose's labels), removing what has
    /// its name: a restore gives back exactly what was archived.
    pub async fn recreate_volume(&self, volume: &VolumeInfo) -> Result<()> {
        match self
            .docker
            .remove_volume(
                &volume.name,
                None::<bollard::query_parameters::RemoveVolumeOptions>,
            )
            .await
        {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => {
                return Err(anyhow!(
                    "cannot replace volume {}: {e} (stop what uses it first)",
                    volume.name
                ));
            }
        }
        let request = bollard::models::VolumeCreateRequest {
            name: Some(volume.name.clone()),
            driver: Some(volume.driver.clone()),
            driver_opts: Some(volume.options.clone().into_iter().collect()),
            labels: Some(volume.labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map_err(|e| anyhow!("cannot create volume {}: {e}", volume.name))?;
        Ok(())
    }

    /// A container that mounts `source` at [`HELPER_MOUNT`] and is never started, for the
    /// archive endpoint; remove it with [`remove_helper`](Self::remove_helper).
    pub async fn create_helper(&self, source: Source<'_>, read_only: bool) -> Result<String> {
        if self.image(HELPER_IMAGE).await?.is_none() {
            let (repo, tag) = HELPER_IMAGE
                .rsplit_once(':')
                .unwrap_or((HELPER_IMAGE, "latest"));
            let options = bollard::query_parameters::CreateImageOptions {
                from_src: Some("-".into()),
                repo: Some(repo.into()),
                tag: Some(tag.into()),
                ..Default::default()
            };
            // An empty tar archive: two zero blocks.
            let empty = bytes::Bytes::from(vec![0u8; 1024]);
            let mut imported =
                self.docker
                    .create_image(Some(options), Some(bollard::body_full(empty)), None);
            while let Some(step) = imported.next().await {
                step.map_err(|e| anyhow!("cannot create the helper image {HELPER_IMAGE}: {e}"))?;
            }
        }
        let mount = match source {
            Source::Volume(name) => bollard::models::Mount {
                typ: Some(bollard::models::MountType::VOLUME),
                source: Some(name.to_string()),
                ..Default::default()
            },
            Source::Path(path) => bollard::models::Mount {
                typ: Some(bollard::models::MountType::BIND),
                source: Some(path.to_string_lossy().into_owned()),
                ..Default::default()
            },
        };
        let body = bollard::models::ContainerCreateBody {
            image: Some(HELPER_IMAGE.into()),
            cmd: Some(vec!["never-started".into()]),
            labels: Some(HashMap::from([(
                "org.composectl.helper".into(),
                "true".into(),
            )])),
            host_config: Some(bollard::models::HostConfig {
                mounts: Some(vec![bollard::models::Mount {
                    target: Some(HELPER_MOUNT.into()),
                    read_only: Some(read_only),
                    ..mount
                }]),
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                body,
            )
            .await
            .map_err(|e| anyhow!("cannot create a helper container: {e}"))?;
        Ok(created.id)
    }

    pub async fn remove_helper(&self, id: &str) -> Result<()> {
        let options = bollard::query_parameters::RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        self.docker
            .remove_container(id, Some(options))
            .await
            .map_err(|e| anyhow!("cannot remove helper container {id}: {e}"))
    }

    /// A tar archive of the helper's mount (its entries under `data/`).
    pub fn read_helper(&self, id: &str) -> ByteStream {
        let options = bollard::query_parameters::DownloadFromContainerOptions {
            path: HELPER_MOUNT.into(),
        };
        Box::pin(
            self.docker
                .download_from_container(id, Some(options))
                .map(|chunk| chunk.map_err(|e| anyhow!("cannot read the archive: {e}"))),
        )
    }

    /// Extracts a tar archive whose entries are under `data/` into the helper's mount.
    pub async fn write_helper(
        &self,
        id: &str,
        tar: impl Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
    ) -> Result<()> {
        let parent = std::path::Path::new(HELPER_MOUNT)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let options = bollard::query_parameters::UploadToContainerOptions {
            path: parent,
            ..Default::default()
        };
        self.docker
            .upload_to_container(id, Some(options), bollard::body_try_stream(tar))
            .await
            .map_err(|e| anyhow!("cannot write the archive: {e}"))
    }

    /// Runs `command` in a running container, its standard output into `out`; returns the exit
    /// code and the last lines it wrote on standard error. Killed (the exec abandoned) after
    /// `limit`.
    pub async fn exec_into(
        &self,
        container: &str,
        command: Vec<String>,
        out: &mut (dyn std::io::Write + Send),
        limit: Duration,
    ) -> Result<(i64, Vec<String>)> {
        let config = bollard::models::ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(command),
            ..Default::default()
        };
        let exec = self
            .docker
            .create_exec(container, config)
            .await
            .map_err(|e| anyhow!("cannot run a command in {container}: {e}"))?;
        let started = self
            .docker
            .start_exec(&exec.id, None)
            .await
            .map_err(|e| anyhow!("cannot run a command in {container}: {e}"))?;
        let bollard::exec::StartExecResults::Attached { mut output, .. } = started else {
            return Err(anyhow!("the command in {container} ran detached"));
        };
        let mut errors = Vec::new();
        let copy = async {
            while let Some(chunk) = output.next().await {
                match chunk.map_err(|e| anyhow!("the command's output failed: {e}"))? {
                    bollard::container::LogOutput::StdErr { message } => {
                        errors.extend_from_slice(&message);
                    }
                    other => out.write_all(&other.into_bytes())?,
                }
            }
            anyhow::Ok(())
        };
        tokio::time::timeout(limit, copy)
            .await
            .map_err(|_| anyhow!("did not finish within {}", crate::duration::format(limit)))??;
        let inspected = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| anyhow!("cannot inspect the command in {container}: {e}"))?;
        let stderr = String::from_utf8_lossy(&errors);
        let tail: Vec<String> = stderr.lines().rev().take(8).map(str::to_string).collect();
        Ok((
            inspected.exit_code.unwrap_or(-1),
            tail.into_iter().rev().collect(),
        ))
    }
}
