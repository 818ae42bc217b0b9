#!/usr/bin/env python3
# Writes the seed corpus of the channel fuzz target (Fuzz/corpus/channel): run from the repository root.
# Record format and the daemon the seeds talk to: Sources/fuzz-channel/FuzzChannel.swift.
import struct, os
out = 'Fuzz/corpus/channel'
nid = [0]
def msg(op, payload=b'', flags=0, size=None, id=None):
    nid[0] += 1
    i = nid[0] if id is None else id
    return struct.pack('<QHHI', i, op, flags, len(payload) if size is None else size) + payload
def rec(m, fds=0):
    return struct.pack('<BH', fds, len(m)) + m
HELLO, REG, UNREG, MAP, UNMAP, COPY, BSET, DREAD, DEV, RESET, NALLOC, REPLACE, HDESTROY, INVAL, QFD, PATTACH, PREPLACE, PDETACH, NALLOCF = range(1, 20)
R, W, FIX = 1, 2, 4
def idx(i, res=0): return struct.pack('<II', i, res)
def mapb(entries, count=None, res=0):
    return struct.pack('<II', len(entries) if count is None else count, res) + b''.join(
        struct.pack('<IIQQQII', *e) if len(e) == 7 else struct.pack('<IIQQQI', *e) + b'\0\0\0\0' for e in entries)
def unmapb(entries, count=None):
    return struct.pack('<II', len(entries) if count is None else count, 0) + b''.join(struct.pack('<IIQQ', *e) for e in entries)
def copyb(entries):
    return struct.pack('<II', len(entries), 0) + b''.join(struct.pack('<IIQQQI', *e) + b'\0\0\0\0' for e in entries)
def dread(ioas, flags, iova, length, ps=0): return struct.pack('<IIQQQ', ioas, flags, iova, length, ps)
def dev(name, pad=64): b = name if isinstance(name, bytes) else name.encode(); return b + b'\0' * (pad - len(b))
P = 4096
# Nested translation (FuzzChannel.swift's set-up): sim-mock0 on IOAS 2 through the vIOMMU 12's
# nest parent 11, vDevice 7, fault queue 13. Then (branch pasidch) sim-pasid0: device 14, its RID on
# PASID-capable HWPT 15, a second one 16. Nested HWPTs an input makes are 17, 18, ... (N0, N0+1, ...)
NP, VI, FQ, MOCK = 11, 12, 13, 'sim-mock0'
PDEV, PH1, PH2 = 'sim-pasid0', 15, 16
N0 = 17
SELFTEST, VTD, SMMU, AMD = 0xdead, 1, 2, 3
INV_SEL, INV_VTD, INV_SMMU = 0xdeadbeef, 0, 1
def nalloc(parent, dtype=SELFTEST, data=None, device=MOCK, dlen=None, fq=0):
    d = struct.pack('<II', 5, 0) if data is None else data
    return struct.pack('<IIII', parent, fq, dtype, len(d) if dlen is None else dlen) + dev(device) + d
def repl(pt, device=MOCK, res=0): return struct.pack('<II', pt, res) + dev(device)
def obj(i, res=0): return struct.pack('<II', i, res)
def inval(target, dtype, elen, entries, count=None):
    body = b''.join(entries)
    return struct.pack('<IIII', target, dtype, elen, (len(entries) if count is None else count)) + body
def hent(flags, iotlb): return struct.pack('<II', flags, iotlb)
def vent(flags, vdev, cache): return struct.pack('<III', flags, vdev, cache)
seeds = {
 'hello': [rec(msg(HELLO))],
 'map-dirty-unmap': [rec(msg(REG, idx(0)), 1), rec(msg(MAP, mapb([(1, 0, 0, 16*P, 0x100000, R|W|FIX)]))),
    rec(msg(BSET, idx(0)), 1), rec(msg(DREAD, dread(1, 0, 0x100000, 16*P))), rec(msg(DREAD, dread(1, 1, 0x100000, 16*P, 2*P))),
    rec(msg(UNMAP, unmapb([(1, 2, 0x100000, 16*P)]))), rec(msg(UNREG, idx(0)))],
 'map-auto-copy': [rec(msg(REG, idx(7)), 1), rec(msg(MAP, mapb([(2, 7, 0, 4*P, 0, R|W), (2, 7, 4*P, 4*P, 0, R)]))),
    rec(msg(MAP, mapb([(1, 7, 0, 8*P, 0x200000, R|W|FIX)]))), rec(msg(COPY, copyb([(2, 1, 0x200000, 8*P, 0x400000, R|W|FIX), (2, 1, 0x200000, 8*P, 0, R)])))],
 'map-batch-64': [rec(msg(REG, idx(1)), 1), rec(msg(MAP, mapb([(1, 1, i*P, P, 0x1000000 + i*P, R|W|FIX) for i in range(64)]))),
    rec(msg(UNMAP, unmapb([(1, 4, 0, 0)])))],
 'map-batch-undo': [rec(msg(REG, idx(2)), 1), rec(msg(MAP, mapb([(1, 2, 0, P, 0x300000, R|W|FIX), (1, 2, P, P, 0x301000, R|W|FIX), (1, 2, 0, P, 0x300000, R|W|FIX)])))],
 'map-batch-256': [rec(msg(REG, idx(3)), 1), rec(msg(MAP, mapb([(2, 3, (i % 64)*P, P, 0x2000000 + i*P, R|FIX) for i in range(256)])))],
 'unmap-flags': [rec(msg(UNMAP, unmapb([(1, 1, 0x500000, P), (1, 0, 0x500000, P), (1, 2, 0x500000, P)])))],
 'unmap-bad-flags': [rec(msg(UNMAP, unmapb([(1, 3, 0, P)]))), rec(msg(UNMAP, unmapb([(1, 4, 0x1000, 0)]))), rec(msg(UNMAP, unmapb([(1, 8, 0, P)])))],
 'device-fd': [rec(msg(DEV, dev('sim-pci0'))), rec(msg(DEV, dev('0000:00:02.0'))), rec(msg(DEV, dev('sim-pci1'))), rec(msg(DEV, dev('nope')))],
 'hot-reset': [rec(msg(RESET, dev('sim-pci0'))), rec(msg(RESET, dev('0000:00:03.0'))), rec(msg(RESET, dev('sim-pci2'))), rec(msg(RESET, dev('sim-pci3'))),
    rec(msg(RESET, dev('sim-mdev0'))), rec(msg(RESET, dev('nope'))), rec(msg(RESET, b'y' * 64)),
    rec(msg(RESET, dev('sim-pci0')), 1), rec(msg(RESET, dev('sim-pci0', 60)))],
 'device-bad-names': [rec(msg(DEV, b'x' * 64)), rec(msg(DEV, dev(b'\xff\xfe'))), rec(msg(DEV, b'ab\0c' + b'\0' * 60)), rec(msg(DEV, dev(b''))), rec(msg(DEV, dev('sim-pci0', 63)))],
 'stale': [rec(msg(DREAD, dread(1, 0, 0, 16*P))), rec(msg(MAP, mapb([(1, 9, 0, P, 0, R)]))), rec(msg(UNREG, idx(9))), rec(msg(REG, idx(512)), 1)],
 'bad-fds': [rec(msg(HELLO), 1), rec(msg(REG, idx(0)), 0), rec(msg(REG, idx(0)), 2), rec(msg(REG, idx(0)), 3), rec(msg(BSET, idx(0)), 2), rec(msg(MAP, mapb([(1, 0, 0, P, 0, R)])), 1)],
 'bad-headers': [rec(b'\x01\x02\x03\x04\x05'), rec(msg(HELLO, size=4)), rec(msg(HELLO, flags=1)), rec(msg(99)), rec(msg(0)),
    rec(msg(HELLO, b'\0' * 8)), rec(msg(REG, idx(0, 1)), 1), rec(b'\0' * 16)],
 'bad-batches': [rec(msg(MAP, mapb([], count=0))), rec(msg(MAP, mapb([(1, 0, 0, P, 0, R)], count=257))), rec(msg(MAP, mapb([(1, 0, 0, P, 0, R)], res=1))),
    rec(msg(MAP, mapb([(1, 0, 0, P, 0, R, 5)]))), rec(msg(MAP, mapb([(1, 0, 0, P, 0x1000, R)]))), rec(msg(MAP, mapb([(1, 0, 0, P, 0, 8)]))),
    rec(msg(COPY, copyb([(1, 2, 0, P, 0x1000, R)]))), rec(msg(MAP, mapb([(1, 0, 0, P, 0, R)])[:-3]))],
 'too-large': [rec(msg(MAP, mapb([(1, 0, 0, P, 0, R)] * 256) + b'\0'))],
 'dirty-bad': [rec(msg(BSET, idx(0)), 1), rec(msg(DREAD, dread(1, 2, 0, 16*P))), rec(msg(DREAD, dread(1, 0, 0, 1 << 40))), rec(msg(DREAD, dread(2, 0, 0, 16*P))),
    rec(msg(DREAD, dread(77, 0, 0, 16*P))), rec(msg(BSET, struct.pack('<II', 1, 0)), 1)],
 'empty-message': [rec(b''), rec(msg(HELLO))],
 'map-misaligned': [rec(msg(REG, idx(4)), 1), rec(msg(MAP, mapb([(1, 4, 1, P, 0, R)]))), rec(msg(MAP, mapb([(1, 4, 0, 0, 0, R)]))),
    rec(msg(MAP, mapb([(1, 4, 0, 1 << 30, 0, R)]))), rec(msg(MAP, mapb([(3, 4, 0, P, 0, R)]))), rec(msg(REG, idx(4)), 1)],
}
seeds.update({
 'nested-flow': [rec(msg(NALLOC, nalloc(NP))), rec(msg(NALLOC, nalloc(VI, data=struct.pack('<II', 9, 0)))), rec(msg(REPLACE, repl(N0))),
    rec(msg(INVAL, inval(N0, INV_SEL, 8, [hent(0, i % 4) for i in range(64)]))),
    rec(msg(INVAL, inval(VI, INV_SEL, 12, [vent(0, 7, 0), vent(0, 8, 1), vent(0, 7, 2)]))),
    rec(msg(NALLOC, nalloc(NP))), rec(msg(REPLACE, repl(N0 + 2))), rec(msg(HDESTROY, obj(N0))), rec(msg(REPLACE, repl(NP))),
    rec(msg(HDESTROY, obj(N0 + 2))), rec(msg(HDESTROY, obj(N0 + 1))), rec(msg(REPLACE, repl(2)))],
 'invalidate-batch-256': [rec(msg(NALLOC, nalloc(NP))), rec(msg(INVAL, inval(N0, INV_SEL, 8, [hent(1, 0)] * 256))),
    rec(msg(INVAL, inval(VI, INV_SEL, 12, [vent(1, 7, 0)] * 256)))],
 'invalidate-bad': [rec(msg(NALLOC, nalloc(NP))), rec(msg(INVAL, inval(N0, 0xdadbeef, 8, [hent(0, 0)]))), rec(msg(INVAL, inval(N0, INV_SEL, 10, [b'\0' * 10]))),
    rec(msg(INVAL, inval(N0, INV_SEL, 8, [], count=0))), rec(msg(INVAL, inval(N0, INV_SEL, 8, [hent(0, 0)] * 257))), rec(msg(INVAL, b'\0' * 12)),
    rec(msg(INVAL, inval(N0, INV_SEL, 8, [hent(0, 1), hent(0, 4)]))), rec(msg(INVAL, inval(N0, INV_SEL, 8, [hent(2, 0)]))),
    rec(msg(INVAL, inval(NP, INV_SEL, 8, [hent(0, 0)]))), rec(msg(INVAL, inval(999, INV_SEL, 8, [hent(0, 0)]))),
    rec(msg(INVAL, inval(N0, INV_SEL, 8, [hent(0, 0)], count=2))), rec(msg(INVAL, inval(N0, INV_SEL, 12, [vent(0, 7, 0)]))),
    rec(msg(INVAL, inval(N0, INV_VTD, 24, [struct.pack('<QQII', 0, 1, 0, 0)]))), rec(msg(INVAL, inval(VI, INV_SEL, 12, [vent(0, 7, 9)]))),
    rec(msg(INVAL, inval(VI, INV_SMMU, 16, [b'\0' * 16]))), rec(msg(INVAL, inval(VI, INV_SEL, 12, [vent(0, 8, 0)]))),
    rec(msg(INVAL, inval(N0, INV_SEL, 8, [hent(0, 0)])), 1)],
 'nested-alloc-bad': [rec(msg(NALLOC, nalloc(NP, dtype=7))), rec(msg(NALLOC, nalloc(NP, dlen=4))), rec(msg(NALLOC, nalloc(NP, data=struct.pack('<QQII', 0, 0x1000, 48, 0), dtype=VTD))),
    rec(msg(NALLOC, nalloc(NP, data=struct.pack('<II', 1, 1)))), rec(msg(NALLOC, nalloc(999))), rec(msg(NALLOC, nalloc(1))), rec(msg(NALLOC, nalloc(NP, device=b'x' * 64))),
    rec(msg(NALLOC, nalloc(NP)[:40])), rec(msg(NALLOC, nalloc(NP, fq=FQ))), rec(msg(NALLOC, nalloc(NP)), 1), rec(msg(NALLOC, nalloc(NP, device='sim-pci0'))),
    rec(msg(NALLOC, nalloc(NP, data=struct.pack('<QQ', 1, 0), dtype=SMMU))), rec(msg(NALLOC, nalloc(NP, data=b'\0' * 32, dtype=AMD))), rec(msg(NALLOC, nalloc(NP) + b'\0'))],
 'replace-bad': [rec(msg(REPLACE, repl(999))), rec(msg(REPLACE, repl(NP, res=1))), rec(msg(REPLACE, obj(NP))), rec(msg(REPLACE, repl(2, device='sim-pci0'))),
    rec(msg(REPLACE, repl(1, device='sim-mdev0'))), rec(msg(REPLACE, repl(VI))), rec(msg(REPLACE, repl(NP, device='nope')))],
 'queue-fd': [rec(msg(QFD, obj(FQ))), rec(msg(QFD, obj(FQ))), rec(msg(QFD, obj(999))), rec(msg(QFD, obj(NP))), rec(msg(QFD, obj(FQ)), 1), rec(msg(QFD, obj(FQ, 1))),
    rec(msg(QFD, obj(FQ) + b'\0' * 4))],
 'hwpt-destroy': [rec(msg(HDESTROY, obj(NP))), rec(msg(HDESTROY, obj(VI))), rec(msg(HDESTROY, obj(999))), rec(msg(HDESTROY, obj(1)[:4])), rec(msg(HDESTROY, obj(NP, 2)))],
})
# PASID attachments (ops 16-18, branch pasidch): u32 pasid, u32 hwpt, u64 reserved, device[64].
def pas(pasid, hwpt=0, device=PDEV, res=0): return struct.pack('<IIQ', pasid, hwpt, res) + dev(device)
seeds.update({
 'pasid-flow': [rec(msg(PATTACH, pas(5, PH1))), rec(msg(PATTACH, pas(1024, PH2))), rec(msg(PREPLACE, pas(5, PH2))),
    rec(msg(PREPLACE, pas(5, PH2))), rec(msg(NALLOC, nalloc(NP, device=PDEV))), rec(msg(PREPLACE, pas(1024, N0))),
    rec(msg(HDESTROY, obj(PH1))), rec(msg(PDETACH, pas(5))), rec(msg(PDETACH, pas(1024))), rec(msg(HDESTROY, obj(N0)))],
 'pasid-bad': [rec(msg(PATTACH, pas(0, PH1))), rec(msg(PATTACH, pas(1 << 20, PH1))), rec(msg(PATTACH, pas(5, NP))), rec(msg(PATTACH, pas(5, 999))),
    rec(msg(PATTACH, pas(5, PH1, device='sim-mock0'))), rec(msg(PATTACH, pas(5, PH1, device='sim-pci3'))), rec(msg(PATTACH, pas(5, PH1, device='nope'))),
    rec(msg(PATTACH, pas(5, PH1, res=1))), rec(msg(PDETACH, pas(5, PH1))), rec(msg(PDETACH, pas(5))), rec(msg(PREPLACE, pas(5, PH2))),
    rec(msg(PATTACH, pas(5, PH1)[:72])), rec(msg(PATTACH, pas(5, PH1) + b'\0')), rec(msg(PATTACH, pas(5, PH1, device=b'z' * 64))),
    rec(msg(PATTACH, pas(5, PH1)), 1), rec(msg(PATTACH, pas(7, PH1))), rec(msg(PATTACH, pas(7, PH2))), rec(msg(REPLACE, repl(NP, device=PDEV))),
    rec(msg(HDESTROY, obj(PH2)))],
})
# NESTED_ALLOC_FLAGS (op 19, branch pasidnest): op 11's 80 bytes, u32 flags (bit 0 PASID), u32
# reserved, then the driver data at 88.
def nallocf(parent, flags=1, res=0, dtype=SELFTEST, data=None, device=PDEV, dlen=None, fq=0):
    d = struct.pack('<II', 5, 0) if data is None else data
    return struct.pack('<IIII', parent, fq, dtype, len(d) if dlen is None else dlen) + dev(device) + struct.pack('<II', flags, res) + d
seeds.update({
 'nested-flags-flow': [rec(msg(NALLOCF, nallocf(NP))), rec(msg(PATTACH, pas(5, N0))), rec(msg(NALLOCF, nallocf(NP, flags=0))),
    rec(msg(PATTACH, pas(6, N0 + 1))), rec(msg(PREPLACE, pas(5, PH1))), rec(msg(PREPLACE, pas(5, N0))), rec(msg(HDESTROY, obj(N0))),
    rec(msg(PDETACH, pas(5))), rec(msg(HDESTROY, obj(N0))), rec(msg(HDESTROY, obj(N0 + 1))), rec(msg(NALLOCF, nallocf(VI, device=MOCK)))],
 'nested-flags-bad': [rec(msg(NALLOCF, nallocf(NP, flags=2))), rec(msg(NALLOCF, nallocf(NP, flags=0x80000001))), rec(msg(NALLOCF, nallocf(NP, res=1))),
    rec(msg(NALLOCF, nallocf(NP, dtype=7))), rec(msg(NALLOCF, nallocf(NP, dlen=4))), rec(msg(NALLOCF, nallocf(NP)[:87])), rec(msg(NALLOCF, nallocf(NP) + b'\0')),
    rec(msg(NALLOCF, nalloc(NP, device=PDEV))), rec(msg(NALLOCF, nallocf(NP)), 1), rec(msg(NALLOCF, nallocf(999))), rec(msg(NALLOCF, nallocf(PH1))),
    rec(msg(NALLOCF, nallocf(NP, device='nope'))), rec(msg(NALLOCF, nallocf(NP, device=b'z' * 64))), rec(msg(NALLOCF, nallocf(NP, data=struct.pack('<II', 0, 1)))),
    rec(msg(20, nallocf(NP)))],
})
for name, recs in seeds.items():
    open(os.path.join(out, name), 'wb').write(b''.join(recs))
print(len(seeds))
