# composectl %postun: after erase ($1 = 0) and after the old version is gone on upgrade ($1 = 1).
# Forget removed units; never fail the transaction (see %post).
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" = 0 ]; then
    # Erased: drop the default layout if nothing is left in it (rpm keeps a modified
    # networks.toml as networks.toml.rpmsave, and stacks the administrator created stay).
    rmdir /etc/composectl/stacks 2>/dev/null || :
    rmdir /etc/composectl 2>/dev/null || :
fi
exit 0
