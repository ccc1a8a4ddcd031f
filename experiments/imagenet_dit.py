"""Zero-shot ImageNet classification with a pretrained DiT (the Diffusion Classifier).

Protocol of Li et al. (2023), ``eval_prob_dit.py`` of diffusion-classifier/
diffusion-classifier: 256 px centre crops (ADM's ``center_crop_arr``) scaled to
``[-1, 1]``, latent = VAE posterior mean x ``scaling_factor`` (0.18215), DDPM timesteps
``range(t_interval // 2, 1000, t_interval)`` with one noise draw shared by every image,
timestep and class, class score = mean squared ε-error, prediction = argmin. The
adaptive variant is the paper's ``eval_prob_adaptive.py`` elimination: stages of
``n_samples`` evenly spaced timesteps, keeping the ``to_keep`` classes of lowest mean
error after each stage (one noise per newly evaluated timestep). Classes are sharded over
the available devices (``jax.shard_map`` over a ``"classes"`` mesh axis). Two more
rows use the library's strategies on the same latents: ``staged``, the staged
elimination of ``jgen.diffusion.sharded_classify(strategy="adaptive")`` with classes
sharded over every local device (stages ``--stages`` / ``--stages-keep``), and
``race``, ``jgen.diffusion.batch_race`` with importance-sampled antithetic timesteps
fitted on ``--pilot-images`` labelled images that are not evaluated.

  python experiments/imagenet_dit.py --dit DiT-XL-2-256/transformer \\
      --vae sd-vae-ft-ema --images imagenet/val --max-images 100
  python experiments/imagenet_dit.py --smoke      # random tiny models, synthetic images

Writes ``--out`` (default ``results/imagenet_dit``) ``/results.json`` and prints an
accuracy / evaluations table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P
from PIL import Image

import jgen
from jgen import diffusion
from jgen.diffusion import pretrained as pt

if __package__ in (None, ""):  # allow `python experiments/imagenet_dit.py`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import report  # noqa: E402

EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp")
PROTOCOLS = ("reference", "adaptive", "staged", "race")


def center_crop(image: Image.Image, size: int) -> np.ndarray:
  """ADM's ``center_crop_arr``: box-halve, bicubic resize, centre crop; ``[-1, 1]``."""
  image = image.convert("RGB")
  while min(*image.size) >= 2 * size:
    image = image.resize(tuple(x // 2 for x in image.size), resample=Image.BOX)
  scale = size / min(*image.size)
  image = image.resize(tuple(round(x * scale) for x in image.size),
                       resample=Image.BICUBIC)
  arr = np.asarray(image)
  top, left = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
  arr = arr[top:top + size, left:left + size].astype(np.float32)
  return arr / 127.5 - 1.0


def list_images(folder: str, num_classes: int) -> list[tuple[str, int]]:
  """``(path, label)`` pairs of an ImageNet-layout folder (sorted class subfolders)."""
  if not os.path.isdir(folder):
    raise ValueError(f"--images folder {folder!r} does not exist.")
  classes = sorted(d for d in os.listdir(folder)
                   if os.path.isdir(os.path.join(folder, d)))
  if len(classes) != num_classes:
    raise ValueError(f"--images {folder!r} has {len(classes)} class folders; the DiT"
                     f" has {num_classes} classes.")
  return [(os.path.join(folder, c, f), k) for k, c in enumerate(classes)
          for f in sorted(os.listdir(os.path.join(folder, c)))
          if f.lower().endswith(EXTENSIONS)]


def sharded_errors(den, mesh: Mesh):
  """``errors(params, x, noise, gammas, classes) -> [num_t, K]`` with K sharded."""
  n = mesh.devices.size

  def local(params, x, noise, gammas, classes):
    return pt.class_eps_errors(den, params, x, noise, gammas, classes)

  fn = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P(), P(), P(), P(),
                                                         P("classes")),
                             out_specs=P(None, "classes")))

  def errors(params, x, noise, gammas, classes):
    k = len(classes)
    padded = np.concatenate([classes, np.full((-k) % n, classes[0])])  # pad, never drop
    return np.asarray(fn(params, x, noise, gammas, jnp.asarray(padded, jnp.int32)))[:, :k]

  return errors


def reference_protocol(errors, params, x, noise, gammas, num_classes):
  """All classes at every grid timestep: ``(prediction, evaluations)``."""
  table = errors(params, x, noise, gammas, np.arange(num_classes))
  return int(np.argmin(table.mean(axis=0))), table.size


def adaptive_protocol(errors, params, x, noises, table, n_samples, to_keep,
                      num_classes, num_train):
  """``eval_prob_adaptive.py``'s elimination: ``(prediction, evaluations)``."""
  max_n = max(n_samples)
  t_all = list(range(num_train // max_n // 2, num_train, num_train // max_n))[:max_n]
  remaining = np.arange(num_classes)
  sums, counts, done, evals = np.zeros(num_classes), np.zeros(num_classes), [], 0
  for n, keep in zip(n_samples, to_keep):
    stage = t_all[len(t_all) // n // 2::len(t_all) // n][:n]
    new = [t for t in stage if t not in done]
    if new:
      idx = np.arange(len(done), len(done) + len(new))  # noise by evaluation order
      err = errors(params, x, noises[idx], table[np.asarray(new)], remaining)
      sums[remaining] += err.sum(axis=0)
      counts[remaining] += len(new)
      evals += err.size
      done += new
    means = sums[remaining] / counts[remaining]
    remaining = remaining[np.argsort(means, kind="stable")[:keep]]
  return int(remaining[0]), evals


def library_protocols(den, params, mesh, schedule, stages, keep, proposal, race):
  """The library's strategies on one latent: ``{name: (prediction, evaluations)}``.

  * ``staged``: ``jgen.diffusion.sharded_classify(strategy="adaptive")``, classes
    sharded over every local device, the stages that came within 0.5 points of Bayes
    on the 1,000-class oracle (docs/diffusion_likelihoods.md); its evaluations count
    the classes padded to a multiple of the devices, which are computed too;
  * ``race``: ``jgen.diffusion.batch_race`` with importance-sampled, antithetic
    timesteps (``proposal`` fitted on labelled pilot latents); one device, its calls
    sized by the execution plan.
  """
  num_classes = den.num_classes
  key_s, key_r = jax.random.split(jax.random.key(7))

  def run(x):
    res = diffusion.sharded_classify(key_s, den, params, x, num_classes, mesh,
                                     strategy="adaptive", n_samples=tuple(stages),
                                     to_keep=tuple(keep), schedule=schedule)
    out = {"staged": (int(res.label), int(res.num_evals))}
    r = diffusion.batch_race(key_r, params, x[None], num_classes, cfg=race,
                             proposal=proposal)
    out["race"] = (int(r.label[0]), int(r.num_evals[0]))
    return out

  return run


def parse(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--dit", help="DiTTransformer2DModel folder (config + safetensors)")
  p.add_argument("--vae", help="AutoencoderKL folder")
  p.add_argument("--images", help="ImageNet-layout folder: one subfolder per class")
  p.add_argument("--out", default="results/imagenet_dit")
  p.add_argument("--image-size", type=int, default=256)
  p.add_argument("--t-interval", type=int, default=5)
  p.add_argument("--n-samples", type=int, nargs="+", default=[50, 500])
  p.add_argument("--to-keep", type=int, nargs="+", default=[5, 1])
  p.add_argument("--max-images", type=int, default=None)
  p.add_argument("--stages", type=int, nargs="+", default=[8, 48, 256, 1024],
                 help="draws per stage of the library's staged elimination")
  p.add_argument("--stages-keep", type=int, nargs="+", default=[100, 12, 3, 1])
  p.add_argument("--pilot-images", type=int, default=10,
                 help="labelled images (not evaluated) that fit the race's proposal")
  p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--smoke", action="store_true", help="random tiny models, synthetic data")
  args = p.parse_args(argv)
  if len(args.n_samples) != len(args.to_keep) or args.to_keep[-1] != 1:
    raise ValueError("--n-samples and --to-keep need equal lengths and --to-keep must"
                     f" end with 1, got {args.n_samples} and {args.to_keep}.")
  if not args.smoke and not (args.dit and args.vae and args.images):
    raise ValueError("--dit, --vae and --images are required (or pass --smoke).")
  return args


def smoke_setup(args, folder: str):
  """Random tiny DiT + VAE and one synthetic PNG per class in ``folder``."""
  dit_cfg = pt.DiTConfig(num_attention_heads=2, attention_head_dim=8, num_layers=1,
                         sample_size=4, out_channels=8, num_embeds_ada_norm=3)
  vae_cfg = pt.VAEConfig(block_out_channels=(8, 16, 16), norm_num_groups=4)
  k_dit, k_vae, k_img = jax.random.split(jax.random.key(args.seed), 3)
  rng = np.random.default_rng(args.seed)
  for c in range(dit_cfg.num_embeds_ada_norm):
    os.makedirs(os.path.join(folder, f"n{c:08d}"))
    pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(os.path.join(folder, f"n{c:08d}", "0.png"))
  args.image_size, args.t_interval = 16, 500
  args.n_samples, args.to_keep = [1, 2], [2, 1]
  args.stages, args.stages_keep, args.pilot_images = [2, 4], [2, 1], 0
  dtype = jnp.dtype(args.dtype)
  return (dit_cfg, pt.init_dit(k_dit, dit_cfg, dtype), vae_cfg,
          pt.init_vae_encoder(k_vae, vae_cfg, dtype))


def check_shapes(args, dit_cfg, vae_cfg):
  latent = args.image_size // vae_cfg.downsampling
  if args.image_size % vae_cfg.downsampling or latent != dit_cfg.sample_size:
    raise ValueError(f"--image-size {args.image_size} gives {latent} px latents; the"
                     f" DiT takes {dit_cfg.sample_size} px.")
  if vae_cfg.latent_channels != dit_cfg.in_channels:
    raise ValueError(f"the VAE has {vae_cfg.latent_channels} latent channels; the DiT"
                     f" takes {dit_cfg.in_channels}.")


def latent_of(args, vae_cfg, vae_params, path):
  pixels = jnp.asarray(center_crop(Image.open(path), args.image_size))
  return pt.encode(vae_cfg, vae_params, pixels)[0] * vae_cfg.scaling_factor


def race_setup(args, den, dit_params, vae_cfg, vae_params, pilot, schedule):
  """The race's configuration and its timestep proposal, fitted on ``pilot``
  ``(path, label)`` images (a random latent of class 0 when there are none)."""
  race = diffusion.race_config(den, schedule=schedule, chunk_t=8, antithetic=True,
                               max_rounds=16)
  if pilot:
    x = jnp.stack([latent_of(args, vae_cfg, vae_params, p) for p, _ in pilot])
    y = jnp.asarray([label for _, label in pilot], jnp.int32)
  else:
    x = jax.random.normal(jax.random.key(8), (1,) + den.data_shape, jnp.float32)
    y = jnp.zeros((1,), jnp.int32)
  proposal = diffusion.fit_proposal(jax.random.key(9), den, dit_params, x, y,
                                    den.num_classes, schedule=schedule, num_bins=8,
                                    num_competitors=min(4, den.num_classes - 1))
  return race, proposal


def run(args, dit_cfg, dit_params, vae_cfg, vae_params, images, pilot=()):
  mesh = Mesh(np.asarray(jax.devices()), ("classes",))
  den = pt.dit_denoiser(dit_cfg)
  errors = sharded_errors(den, mesh)
  schedule = pt.DDPMSchedule()
  # The race and its proposal draw continuous t on the DDPM gamma curve; the DiT maps
  # each gamma to its nearest training timestep.
  continuous = schedule.schedule()._replace(num_steps=None)
  race, proposal = race_setup(args, den, dit_params, vae_cfg, vae_params, list(pilot),
                              continuous)
  library = library_protocols(den, dit_params, jgen.parallel.make_mesh(),
                              schedule.schedule(), args.stages, args.stages_keep,
                              proposal, race)
  shape = (dit_cfg.sample_size,) * 2 + (dit_cfg.in_channels,)
  k_ref, k_ada = jax.random.split(jax.random.key(args.seed))
  noise = jax.random.normal(k_ref, shape, jnp.float32)  # shared by every image
  noises = jax.random.normal(k_ada, (max(args.n_samples),) + shape, jnp.float32)
  table = np.asarray(pt.reference_gammas(1, schedule))  # gamma of DDPM step t
  gammas = pt.reference_gammas(args.t_interval, schedule)
  num_classes = dit_cfg.num_embeds_ada_norm
  rows, t0 = [], time.perf_counter()
  for path, label in images:
    x = latent_of(args, vae_cfg, vae_params, path)
    ref_pred, ref_evals = reference_protocol(errors, dit_params, x, noise, gammas,
                                             num_classes)
    ada_pred, ada_evals = adaptive_protocol(
        errors, dit_params, x, noises, table, args.n_samples, args.to_keep,
        num_classes, schedule.num_train_timesteps)
    lib = library(x)
    rows.append(dict(path=path, label=label, reference=ref_pred, adaptive=ada_pred,
                     reference_evals=ref_evals, adaptive_evals=ada_evals,
                     **{name: pred for name, (pred, _) in lib.items()},
                     **{f"{name}_evals": n for name, (_, n) in lib.items()}))
  return rows, time.perf_counter() - t0


def summarise(rows, seconds):
  out = {}
  for name in PROTOCOLS:
    out[name] = dict(
        accuracy=float(np.mean([r[name] == r["label"] for r in rows])),
        evaluations_per_image=float(np.mean([r[f"{name}_evals"] for r in rows])))
  out["seconds_per_image"] = seconds / max(len(rows), 1)
  return out


def main(argv=None):
  args = parse(argv)
  with tempfile.TemporaryDirectory() as tmp:
    if args.smoke:
      args.images = os.path.join(tmp, "images")
      dit_cfg, dit_params, vae_cfg, vae_params = smoke_setup(args, args.images)
    else:
      dtype = jnp.dtype(args.dtype)
      dit_cfg, dit_params = pt.load_dit(args.dit, dtype)
      vae_cfg, vae_params = pt.load_vae_encoder(args.vae, dtype)
    check_shapes(args, dit_cfg, vae_cfg)
    listed = list_images(args.images, dit_cfg.num_embeds_ada_norm)
    # Pilot images fit the race's proposal and are not evaluated (spread over classes).
    pilot = listed[::max(len(listed) // max(args.pilot_images, 1), 1)][:args.pilot_images]
    rest = [item for item in listed if item not in pilot]
    images = rest[:args.max_images]
    rows, seconds = run(args, dit_cfg, dit_params, vae_cfg, vae_params, images, pilot)
  summary = summarise(rows, seconds)
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, "results.json")
  with open(path, "w") as f:
    json.dump(dict(args=vars(args), devices=len(jax.devices()), summary=summary,
                   images=rows), f, indent=1)
  report.print_table(
      ["protocol", "accuracy", "evaluations / image"],
      [[name, f"{summary[name]['accuracy']:.4f}",
        f"{summary[name]['evaluations_per_image']:.0f}"] for name in PROTOCOLS],
      title=f"{len(rows)} images, {len(jax.devices())} devices, t_interval="
            f"{args.t_interval}, n_samples={args.n_samples}, to_keep={args.to_keep};"
            f" {summary['seconds_per_image']:.2f} s / image (all protocols)")
  report.print_written([path])
  return summary


if __name__ == "__main__":
  main(sys.argv[1:])
