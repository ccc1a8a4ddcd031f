"""benchmarks/accelerator.py: FLOP counts, the peak table and the --smoke run.

References: DiT-XL/2's 118.6 GFLOPs (multiply-adds) per forward (Peebles & Xie 2023,
Table 4); the vendors' dense bfloat16 peaks quoted in the module.
"""

import json

import pytest

from benchmarks import accelerator
from jgen.diffusion import pretrained as pt


def test_dit_xl2_flops_match_the_paper():
  # The paper counts multiply-adds: 118.6 G for DiT-XL/2 -> 237.2 GFLOPs.
  assert accelerator.dit_flops(pt.DiTConfig()) == pytest.approx(2 * 118.6e9, rel=0.01)


class Kind:
  def __init__(self, kind):
    self.device_kind = kind


@pytest.mark.parametrize("kind, bf16", [("NVIDIA H100 80GB HBM3", 989.4),
                                        ("NVIDIA H100 PCIe", 756.0),
                                        ("NVIDIA H200", 989.0),
                                        ("NVIDIA A100-SXM4-80GB", 312.0),
                                        ("TPU v4", 275.0), ("TPU v5 lite", 197.0),
                                        ("cpu", None)])
def test_peak_table(kind, bf16):
  assert accelerator.peak_tflops(Kind(kind))[0] == bf16


def test_smoke_run_prints_one_table(tmp_path, capsys):
  out = tmp_path / "acc.json"
  rows = accelerator.main(["--smoke", "--out", str(out)])
  text = capsys.readouterr().out
  items = [r["item"] for r in rows]
  for want in ("DiT forward, bf16", "10-class classification", "Gaussian NB log_likelihood",
               "QDA log_likelihood", "NB-vs-LR grid cell", "class sharding"):
    assert want in items
  assert any(r["config"].endswith("(planned)") for r in rows)
  assert text.count("| item |") == 1
  assert json.loads(out.read_text())["smoke"] is True
