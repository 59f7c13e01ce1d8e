#!/usr/bin/env python3
"""FileSR benchmark (not a test): the release FileSR binary side by side with references.

Prints the median wall time of each operation over N runs and the ratio to its reference:
  vdi_create 1 GiB / 1 TiB   vs  qemu-img create -f vpc (same size)
  vdi_resize 1 GiB -> 2040 GiB  vs  qemu-img resize -f vpc
  vdi_delete                 vs  rm of the same file
  sr_scan with 1,000 VDIs    vs  ls -l of the SR directory
  process start (--help)     vs  /bin/true
Usage: Scripts/benchmark-filesr.py [runs]   (builds the release binary first)
"""
import os, shutil, statistics, subprocess, sys, tempfile, time, uuid

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
subprocess.run(["swift", "build", "-c", "release", "--static-swift-stdlib", "--product", "FileSR"], cwd=ROOT, check=True,
               stdout=subprocess.DEVNULL)
BIN = subprocess.run(["swift", "build", "-c", "release", "--static-swift-stdlib", "--show-bin-path"], cwd=ROOT,
                     check=True, capture_output=True, text=True).stdout.strip()
FILESR = os.path.join(BIN, "FileSR")
work = tempfile.mkdtemp(prefix="sm-bench-")
env = dict(os.environ, SM_RUN_DIR=f"{work}/run", SM_LOCK_DIR=f"{work}/lock", SM_LOG_FILE=f"{work}/SMlog")
os.makedirs(f"{work}/srv")
dconf = f"<dconf><location>{work}/srv</location></dconf>"
sr = str(uuid.uuid4())


def run(args, check=True):
    subprocess.run(args, env=env, check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def timed(make_args, prepare=None):
    samples = []
    for i in range(RUNS):
        if prepare:
            prepare(i)
        args = make_args(i)
        start = time.perf_counter()
        run(args)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def filesr(*args):
    return [FILESR, dconf, *args]


run(filesr("sr_create", sr, "0"))
run(filesr("sr_attach", sr))
rows = []
for label, size in (("1 GiB", 1 << 30), ("1 TiB", 1 << 40)):
    ours = timed(lambda i: filesr("vdi_create", sr, str(uuid.uuid4()), str(size)))
    ref_dir = f"{work}/ref"
    os.makedirs(ref_dir, exist_ok=True)
    theirs = timed(lambda i: ["qemu-img", "create", "-q", "-f", "vpc", f"{ref_dir}/{uuid.uuid4()}.vhd", str(size)])
    rows.append((f"vdi_create {label}", ours, "qemu-img create", theirs))

targets = []
def make_resize_target(i):
    vdi = str(uuid.uuid4())
    run(filesr("vdi_create", sr, vdi, str(1 << 30)))
    targets.append(vdi)
ours = timed(lambda i: filesr("vdi_resize", sr, targets[i], str(2040 << 30)), prepare=make_resize_target)
# qemu-img cannot resize vpc images: the reference is creating the 2040 GiB image outright.
theirs = timed(lambda i: ["qemu-img", "create", "-q", "-f", "vpc", f"{work}/ref/big-{i}.vhd", str(2040 << 30)])
rows.append(("vdi_resize 1 GiB -> 2040 GiB", ours, "qemu-img create 2040G", theirs))

victims = []
def make_victim(i):
    vdi = str(uuid.uuid4())
    run(filesr("vdi_create", sr, vdi, str(1 << 30)))
    victims.append(vdi)
ours = timed(lambda i: filesr("vdi_delete", sr, victims[i]), prepare=make_victim)
files = []
def make_file(i):
    path = f"{work}/ref/victim-{i}"
    shutil.copy(f"{work}/srv/{sr}/{targets[0]}.vhd", path)
    files.append(path)
theirs = timed(lambda i: ["rm", files[i]], prepare=make_file)
rows.append(("vdi_delete", ours, "rm", theirs))

existing = len([n for n in os.listdir(f"{work}/srv/{sr}") if n.endswith(".vhd")])
for _ in range(1000 - existing):
    run(filesr("vdi_create", sr, str(uuid.uuid4()), str(1 << 30)))
ours = timed(lambda i: filesr("sr_scan", sr))
theirs = timed(lambda i: ["ls", "-l", f"{work}/srv/{sr}"])
rows.append(("sr_scan, 1,000 VDIs", ours, "ls -l", theirs))

ours = timed(lambda i: [FILESR, "--help"])
theirs = timed(lambda i: ["/bin/true"])
rows.append(("start-up (--help)", ours, "/bin/true", theirs))

print(f"{'operation':28} {'FileSR ms':>10}  {'reference':22} {'ref ms':>8}  {'ratio':>6}")
for name, ours, ref_name, theirs in rows:
    print(f"{name:28} {ours * 1000:10.2f}  {ref_name:22} {theirs * 1000:8.2f}  {ours / theirs:6.2f}")
print(f"(median of {RUNS} runs each; ratio = FileSR / reference, lower is better)")
shutil.rmtree(work)
