"""Compile panel end to end (offscreen): the live view's DevKit models compiled for the host,
the folder's files listed, Verify builds it and runs the demo on seven.wav with the host's
detections, Benchmark fills the per-frame table; bad inputs are refused with a clear error."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture
def panel(open_panel):
    from kwsgui.compile_panel import CompilePanel

    return open_panel(CompilePanel, 1100, 700)


def test_host_compile_verify_benchmark(run_job, qtbot, panel, data_dir, tmp_path):
    if shutil.which("cmake") is None or shutil.which("cc") is None:
        pytest.skip("cmake and a C compiler are needed to build the exported folder")
    out = tmp_path / "kws_host"
    panel.set_target("host")
    panel.module.setText("kws")
    panel.outdir.set_path(out)
    panel.clip.set_path(data_dir / "ell_examples" / "seven.wav")
    assert "classifier.ell" in panel.models_label.text()

    assert run_job(panel, panel.compile).completed, panel.error.text()
    names = {panel.files.item(i).text() for i in range(panel.files.count())}
    assert {"kws.o", "kws.h", "kws_demo.c", "CMakeLists.txt", "kws.py", "README.md"} <= names
    assert all((out / n).is_file() for n in names)

    assert run_job(panel, panel.verify).completed, panel.error.text()
    v = panel.verification
    assert v.passed and v.how == "native" and any(ln.endswith("% seven >>>") for ln in v.device_lines)
    assert panel.result_label.text().startswith("✔ Verified on host") and "seven" in panel.result_label.text()

    assert run_job(panel, panel.benchmark).completed, panel.error.text()
    rows = {r.name: r for r in panel.bench_rows}
    assert set(rows) == {"host JIT (llvmlite)", "interpreter (numpy)", "exported demo (host)"}
    assert all(r.us_per_frame > 0 for r in rows.values()) and panel.table.rowCount() == 3


def test_bad_inputs_are_refused(panel, tmp_path):
    panel.outdir.set_path(tmp_path / "x")
    panel.module.setText("1 bad name")
    assert not panel.compile() and "1 bad name" in panel.error.text()
    panel.module.setText("kws")
    panel.set_target("custom")
    panel.triple.setText("nonsense-cpu-os")
    assert not panel.compile() and "nonsense-cpu-os" in panel.error.text()
    panel.set_target("host")
    assert not panel.verify() and "compile for this target" in panel.error.text()


def test_pi3_verify_under_qemu(run_job, qtbot, panel, data_dir, tmp_path):
    """The ARM path: cross-built with the Debian toolchain, run under qemu-arm, same detections."""
    if not (shutil.which("arm-linux-gnueabihf-gcc") and shutil.which("qemu-arm") and shutil.which("cmake")):
        pytest.skip("needs gcc-arm-linux-gnueabihf, qemu-user and cmake (scripts/sysdeps.sh)")
    panel.set_target("pi3")
    panel.module.setText("kws")
    panel.outdir.set_path(tmp_path / "kws_pi3")
    panel.clip.set_path(data_dir / "ell_examples" / "seven.wav")
    assert "armv7-unknown-linux-gnueabihf" in panel.target_label.text()
    assert run_job(panel, panel.compile).completed, panel.error.text()
    assert run_job(panel, panel.verify).completed, panel.error.text()
    v = panel.verification
    assert v.passed and v.how == "qemu-arm" and v.target == "pi3"
    assert panel.result_label.text().startswith("✔ Verified on pi3 (qemu-arm)")


def test_rows_stay_put_and_old_results_go_when_the_target_changes(qtbot, panel):
    """The target line is one line whatever the target (the host's ~100 features are elided, all
    of them in the tooltip), so no row below moves; a benchmark table of one target is cleared
    when another is chosen."""
    from core.compiler.verify import BenchRow

    def rows():
        qtbot.wait(10)
        return [w.mapTo(panel, w.rect().topLeft()).y() for w in (panel.module, panel.outdir, panel.clip,
                                                                  panel.compile_button, panel.table)]

    panel.set_target("host")
    host = rows()
    assert panel.target_label.toolTip() == panel.target_label.text() and "features" in panel.target_label.text()
    for name in ("pi3", "custom", "pi0", "cortex-m4", "cortex-m0", "host"):
        panel.set_target(name)
        assert rows() == host, name
    panel.show_error("a long error " * 40)
    assert rows() == host
    panel.clear_error()

    panel._benched([BenchRow("host JIT (llvmlite)", 9.0, "")])  # as a host Benchmark leaves it
    panel.result_label.setText("Compiled for host in 1.0 s")
    assert panel.table.rowCount() == 1
    panel.set_target("pi3")
    assert panel.table.rowCount() == 0 and panel.bench_rows == [] and panel.result_label.text() == ""


@pytest.mark.parametrize("name, arch, flash_kib, ram_kib, machine", [
    ("cortex-m4", "thumbv7em", 1024, 256, "mps2-an386"),
    ("cortex-m0", "thumbv6m", 2048, 264, "mps2-an385"),  # the M3 board runs the ARMv6-M code
])
def test_mcu_int8_compile_verify_benchmark(run_job, qtbot, panel, data_dir, tmp_path, name, arch, flash_kib, ram_kib,
                                           machine):
    """A microcontroller with the classifier quantized to int8 on a short list of real clips: the image is
    built at Compile (flash / RAM against the part's), Verify runs it under qemu-system-arm with
    seven.wav built in and gets this machine's detections of the same int8 model; Benchmark times
    the host runtimes for int8 and float and says why the image itself is not timed."""
    for t in ("arm-none-eabi-gcc", "qemu-system-arm", "make"):
        assert shutil.which(t), f"{t} is missing: run `make sysdeps` (scripts/sysdeps.sh)"
    sample = data_dir / "speech_commands_v0.01_sample"
    clips = [sorted((sample / w).glob("*.wav"))[0] for w in ("seven", "bed", "yes", "no", "cat", "left")]
    calib = tmp_path / "calib.txt"
    calib.write_text("".join(f"{p}\n" for p in clips))
    seven = data_dir / "ell_examples" / "seven.wav"
    panel.set_target(name)
    assert arch in panel.target_label.text() and f"{ram_kib} KiB RAM" in panel.target_label.text()
    panel.quantize.setChecked(True)
    assert panel.calibration.isEnabled()
    panel.calibration.set_path(calib)
    panel.module.setText("kws")
    panel.outdir.set_path(tmp_path / name)
    panel.clip.set_path(seven)

    assert run_job(panel, panel.compile).completed, panel.error.text()
    c = panel.compiled
    assert "calibrated on 6 clips" in c.quantized
    assert {n.op for n in c.graphs[1].nodes} >= {"gru_q8", "dense_q8"}
    names = {panel.files.item(i).text() for i in range(panel.files.count())}
    assert {"kws.o", "kws.h", "kws_clip.h", "Makefile", "kws.ld"} <= names
    assert c.memory is not None and c.memory.fits and c.memory.flash_budget == flash_kib << 10
    text = panel.result_label.text()
    assert "int8" in text and f"of {flash_kib} KiB" in text and f"of {ram_kib} KiB (fits the part)" in text

    assert run_job(panel, panel.verify).completed, panel.error.text()
    v = panel.verification
    assert v.how == f"qemu-system-arm -M {machine}" and v.passed, (v.device_lines, v.host_lines)
    assert any(ln.endswith("% seven >>>") for ln in v.device_lines)
    assert panel.result_label.text().startswith(f"✔ Verified on {name}")

    panel.clip.set_path(data_dir / "ell_examples" / "bed.wav")  # the image has seven.wav built in
    assert not panel.verify() and "compile again" in panel.error.text()
    panel.clip.set_path(seven)

    assert run_job(panel, panel.benchmark).completed, panel.error.text()
    rows = {r.name: r for r in panel.bench_rows}
    assert {"host JIT (llvmlite), int8", "host JIT (llvmlite), float", f"{name} image"} <= set(rows)
    assert rows["host JIT (llvmlite), int8"].us_per_frame > 0
    assert "not timed" in rows[f"{name} image"].note
    last = panel.table.rowCount() - 1
    assert panel.table.item(last, 1).text() == "–"


def test_quantize_needs_a_calibration_list(panel, tmp_path):
    panel.set_target("host")
    panel.outdir.set_path(tmp_path / "q")
    panel.module.setText("kws")
    panel.quantize.setChecked(True)
    panel.calibration.set_path("")
    assert not panel.compile() and "calibration list" in panel.error.text()
    panel.quantize.setChecked(False)
    assert not panel.calibration.isEnabled()
