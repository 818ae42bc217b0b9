# Shared by the guest's two boots (scripts/vm/init under busybox, scripts/vm/systemd-tests under
# systemd): binding the edu devices to vfio-pci and running a test list with its logs and
# results on the 9p share. Sourced, not run.

say() { echo "vm-test: $*"; }
uptime_s() { read -r up _ < /proc/uptime; echo "$up"; }

# edu devices (1234:11e8) to vfio-pci: each becomes /dev/vfio/devices/vfioN.
bind_edu() {
    for dev in /sys/bus/pci/devices/*; do
        [ "$(cat "$dev/vendor")" = 0x1234 ] && [ "$(cat "$dev/device")" = 0x11e8 ] || continue
        bdf=${dev##*/}
        echo vfio-pci > "$dev/driver_override"
        echo "$bdf" > /sys/bus/pci/drivers_probe || say "binding $bdf to vfio-pci failed"
    done
    # devtmpfs creates the nodes asynchronously: give it a moment before the tests look.
    edu=$(grep -l 0x11e8 /sys/bus/pci/devices/*/device 2>/dev/null | wc -l)
    i=0
    while [ "$(ls /dev/vfio/devices 2>/dev/null | wc -l)" -lt "$edu" ] && [ $i -lt 50 ]; do
        sleep 0.1; i=$((i + 1))
    done
}

# Runs every test of the list FILE ("NAME GATE SECS CMD…" lines): for each, NAME.log (stdout
# and stderr) and, once it has ended, NAME.result ("rc=N start=UPTIME end=UPTIME limit=SECS") on
# the share; a test that never ends leaves no .result, which the host counts as a failure.
run_tests() {
    while read -r name gate limit cmd; do
        case "$name" in ''|'#'*) continue ;; esac
        say "running $name: $cmd"
        mkdir -p "/tmp/$name"
        start=$(uptime_s)
        (cd "/tmp/$name" && exec timeout "$limit" sh -c "$cmd") > "/results/$name.log" 2>&1 < /dev/null
        rc=$?
        end=$(uptime_s)
        echo "rc=$rc start=$start end=$end limit=$limit" > "/results/$name.result"
        say "$name exited with $rc"
    done < "$1"
}
