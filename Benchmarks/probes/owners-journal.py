#!/usr/bin/env python3
# owners-journal: `ioas.info` latency of two real iommufdd binaries (say main's and a branch's)
# holding N owners of one IOAS each, with their journal on. Outside systemd iommufdd journals
# only with an fd store, so this plays the store: NOTIFY_SOCKET is a datagram socket of this
# script that keeps every fd sent with FDSTORE=1 (as systemd would), and FDSTORE=4096.
# The two daemons are asked in turn, the order flipping every round.
#   Benchmarks/probes/owners-journal.py OLD-iommufdd NEW-iommufdd N
# Used for issue 16 target 5 (Benchmarks/RESULTS.md, branches scale10k and ownerjournal). Before
# journal format 3 making the owners took time in N squared (each owner.create and ioas.create
# recorded the whole state: ~15 s at 1,000); with it, 0.2 s per 1,000.
import socket, json, time, subprocess, sys, os, statistics
import threading, array
def drain(ns):
    while True:
        try:
            msg, anc, flags, addr = ns.recvmsg(65536, socket.CMSG_SPACE(4 * 64))
        except OSError:
            return
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds = array.array("i"); fds.frombytes(data[:len(data) - len(data) % 4])
                keep.extend(fds)  # the "store" keeps them, as systemd would
keep = []
def start(binary, path):
    if os.path.exists(path): os.unlink(path)
    npath = path + ".notify"
    if os.path.exists(npath): os.unlink(npath)
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); ns.bind(npath)
    threading.Thread(target=drain, args=(ns,), daemon=True).start()
    env = dict(os.environ, NOTIFY_SOCKET=npath, FDSTORE="4096")
    p = subprocess.Popen([binary, "--backend", "sim", "--socket", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    for _ in range(200):
        if os.path.exists(path): break
        time.sleep(0.05)
    s = socket.socket(socket.AF_UNIX); s.connect(path)
    return p, s, s.makefile("rb")
def call(c, method, params=None):
    s, f = c
    req = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None: req["params"] = params
    s.sendall((json.dumps(req) + "\n").encode())
    r = json.loads(f.readline())
    if "error" in r: raise Exception(r["error"])
    return r["result"]
owners = int(sys.argv[3])
ds = {}
for name, binary in (("old", sys.argv[1]), ("new", sys.argv[2])):
    p, s, f = start(binary, f"/tmp/owners-journal-{os.getpid()}-{name}.sock")
    c = (s, f)
    t0 = time.time()
    probe = None
    for i in range(owners):
        call(c, "owner.create", {"name": f"o{i}"})
        r = call(c, "ioas.create", {"owner": f"o{i}"})
        if probe is None: probe = r["ioas"]
    print(f"{name}: made {owners} owners in {time.time()-t0:.1f} s", flush=True)
    ds[name] = (p, c, probe)
for n in ("old", "new"):
    p, c, probe = ds[n]
    call(c, "ioas.info", {"ioas": probe})
samples = {"old": [], "new": []}
for k in range(400):
    order = ("old", "new") if k % 2 == 0 else ("new", "old")
    for n in order:
        p, c, probe = ds[n]
        t = time.perf_counter(); call(c, "ioas.info", {"ioas": probe}); samples[n].append(time.perf_counter() - t)
for n in ("old", "new"):
    v = sorted(samples[n]); print(f"{n}: ioas.info with {owners} owners: median {statistics.median(v)*1e6:.0f} us, p99 {v[int(len(v)*0.99)]*1e6:.0f} us", flush=True)
for n in ("old", "new"):
    ds[n][0].terminate()
for n in ("old", "new"):
    ds[n][0].wait()
    for suffix in ("", ".notify"):
        try: os.unlink(f"/tmp/owners-journal-{os.getpid()}-{n}.sock{suffix}")
        except OSError: pass
