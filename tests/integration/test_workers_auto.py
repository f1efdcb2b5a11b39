"""`workers: auto` starts one worker per CPU this process may use: the affinity mask (taskset) and
the cgroup CPU quota (here a fixture tree, pointed at with the test-only FULCRUM_CGROUP_ROOT and
FULCRUM_PROC_CGROUP), whichever is smaller; the error log says what it found."""
import os
import shutil
import subprocess

from conftest import FULCRUM, Fulcrum, child_pids, free_port, wait_for, wait_port, yaml_config


def auto_config(h):
    b = h.backend()
    port = free_port()
    text = yaml_config(port, {"backend": {"servers": [(b.address, None)]}}, [{"path": "/", "upstream": "backend"}])
    assert "workers: 1\n" in text
    return text.replace("workers: 1\n", "workers: auto\n"), port


def workers_of(f, n):
    return wait_for(lambda: len(child_pids(f.pid)) == n and child_pids(f.pid), 5)


def test_auto_counts_the_affinity_mask(h):
    if os.cpu_count() < 2:
        raise AssertionError("this test needs a machine with at least 2 CPUs")
    text, port = auto_config(h)
    cfg = os.path.join(h.tmp, "auto.yaml")
    with open(cfg, "w") as fh:
        fh.write(text)
    # taskset -c 0: one CPU in the mask, whatever the host has
    out, err = os.path.join(h.tmp, "auto.out"), os.path.join(h.tmp, "auto.err")
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen([shutil.which("taskset"), "-c", "0", FULCRUM, "-c", cfg], stdout=o, stderr=e,
                                stdin=subprocess.DEVNULL)
    f = Fulcrum(proc, port, cfg, out, err)
    h.fulcrums.append(f)
    assert wait_port(port, proc=proc)
    assert workers_of(f, 1), child_pids(f.pid)
    assert "workers: auto: 1 (" in f.stderr() and "1 in the affinity mask" in f.stderr(), f.stderr()


def test_auto_counts_the_cgroup_quota(h, tmp_path):
    root = tmp_path / "cg"
    (root / "kubepods" / "pod").mkdir(parents=True)
    (root / "kubepods" / "cpu.max").write_text("50000 100000\n")   # 500m: one worker
    (root / "kubepods" / "pod" / "cpu.max").write_text("max 100000\n")
    (root / "self").write_text("0::/kubepods/pod\n")
    text, port = auto_config(h)
    f = h.fulcrum(text, port, env={"FULCRUM_CGROUP_ROOT": str(root), "FULCRUM_PROC_CGROUP": str(root / "self")})
    assert workers_of(f, 1), child_pids(f.pid)
    assert "a quota of 1 CPU (%s/kubepods/cpu.max)" % root in f.stderr(), f.stderr()


def test_auto_without_limits_uses_every_cpu(h, tmp_path):
    root = tmp_path / "cg"
    root.mkdir()
    (root / "self").write_text("0::/\n")
    text, port = auto_config(h)
    f = h.fulcrum(text, port, env={"FULCRUM_CGROUP_ROOT": str(root), "FULCRUM_PROC_CGROUP": str(root / "self")})
    n = len(os.sched_getaffinity(0))
    assert workers_of(f, min(n, 32)), child_pids(f.pid)
    assert "no CPU quota" in f.stderr()
