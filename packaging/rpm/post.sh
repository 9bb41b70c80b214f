# composectl %post: after install ($1 = 1) and upgrade ($1 = 2).
# The default root's stack directory (cargo-generate-rpm cannot ship an empty directory);
# %postun removes it on erase when it is still empty.
mkdir -p /etc/composectl/stacks
# Let the system manager see the new or changed units in /usr/lib/systemd/system; never fail the
# transaction where systemd is not running or not PID 1 (containers, chroots, image builds).
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null 2>&1 || :
fi
exit 0
