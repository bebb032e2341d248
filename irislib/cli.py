"""The `irislib` command: thin argparse wrappers around the functions the notebooks call."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import PRESETS, ConfigError, Experiment, build_experiment


def _add_experiment_args(p: argparse.ArgumentParser, default_preset: str = "tiny") -> None:
    p.add_argument("--preset", default=default_preset, help=f"named preset to start from (default: {default_preset}); "
                   f"one of {', '.join(PRESETS)}")
    p.add_argument("--config", help="config.json to start from instead of a preset (e.g. an earlier run's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field with a dotted key, e.g. --set train.lr=3e-4 (repeatable)")
    p.add_argument("--data", help="image folder (searched recursively) or synthetic:N (same as --set data.path=...)")
    p.add_argument("--crop", choices=["auto", "centre", "iris", "csv"], help="how images are cut to squares (same "
                   "as --set data.crop=...): centre, iris (camera frames: a square on the iris found in each), csv "
                   "(boxes from data.crop_csv); auto = csv when data.crop_csv is set, else centre")
    p.add_argument("--out", required=True, help="run directory to write (created if missing)")
    p.add_argument("--resume", default="auto", help="auto (newest valid checkpoint in --out or the mirror), "
                   "a run or checkpoint directory, or 'no' to start fresh")
    p.add_argument("--mirror", metavar="DIR", help="also copy every checkpoint here (e.g. a Google Drive folder); "
                   "--resume auto looks in both")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...; under "
                   "torchrun each process takes its local GPU")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def experiment_from_args(args) -> Experiment:
    """--config or else --preset, then --data, then --set overrides in order; validated (config.build_experiment,
    the notebooks' path too). --out, --resume, --mirror and --device say where it runs: not part of the Experiment."""
    crop = [f"data.crop={args.crop}"] if getattr(args, "crop", None) else []
    return build_experiment(args.preset, args.config, args.data, [*crop, *args.overrides])


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, e.g. 10,20,50")


def _resume(value: str):
    return None if value in ("no", "none", "") else value


def cmd_train(args, kind: str) -> None:
    exp = experiment_from_args(args)  # config errors first, before heavy imports
    from .train import pipeline
    kwargs = dict(resume=_resume(args.resume), progress=not args.quiet, mirror_dir=args.mirror or None,
                  device=args.device)
    if kind == "refiner":
        run = pipeline.train_refiner(exp, args.vae, args.out, **kwargs)
    else:
        run = (pipeline.train_vae if kind == "vae" else pipeline.train_diffusion)(exp, args.out, **kwargs)
    print(f"run directory: {run}")


def cmd_sample(args) -> None:
    from .train import pipeline
    res = pipeline.sample(args.unet, vae_run=args.vae, out=args.out, n=args.n, strength=args.strength,
                          steps=args.steps, sampler=args.sampler, seed=args.seed, batch_size=args.batch_size,
                          device=args.device, bit_depth=args.bit_depth, use_ema=not args.no_ema,
                          progress=not args.quiet, respacing=args.respacing)
    print(f"wrote {len(res.paths)} images to {args.out} (t0={res.t0}, UNet calls per image={res.nfe})")


def cmd_evaluate(args) -> None:
    from .evaluation import report as reports
    if args.unet:
        report = reports.compare(args.unet, args.vae, args.out, strengths=args.strengths, steps=args.steps,
                                  n=args.n, seed=args.seed, reference=args.reference, sampler=args.sampler,
                                  vanilla_unet=args.vanilla_unet, peer_steps=args.peer_steps,
                                  n_reference=args.n_reference, vanilla_budgets=args.vanilla_budgets,
                                  vanilla_n=args.vanilla_n, rows_from=args.rows_from,
                                  biometrics=not args.no_biometrics, hd_threshold=args.hd_threshold,
                                  n_training=args.n_training)
    else:
        if not args.images:
            raise ConfigError("evaluate needs --images DIR (a folder of PNGs) or --unet RUN for the comparison report")
        report = reports.evaluate(args.images, reference=args.reference or "synthetic:64", out=args.out)
    if "summary" in report:
        print(reports.markdown_table(report))
    else:
        print(reports.markdown_evaluation(report))


def cmd_demo(args) -> None:
    from .evaluation import report
    out = report.demo(args.out, quick=args.quick)
    print(f"demo finished: report and grids in {out}")


def cmd_synth(args) -> None:
    from .data.synthetic import write_synthetic
    size = args.frame[::-1] if args.frame else args.size
    paths = write_synthetic(args.out, args.n, size=size, seed=args.seed, frame=bool(args.frame))
    what = f"{args.frame[0]}x{args.frame[1]} frames" if args.frame else "irises"
    print(f"wrote {len(paths)} synthetic {what} and geometry.json to {args.out}")


def _frame_size(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480), one clear error otherwise."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) >= 64 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r}: give WIDTHxHEIGHT in px, each at least 64, e.g. 640x480")
    return int(parts[0]), int(parts[1])


def cmd_fetch(args) -> None:
    from . import hub
    if args.list:
        print(f"{'name':24s} {'kind':8s} {'size MB':>8}  trained on")
        for entry in hub.list_checkpoints(args.manifest):
            size = entry.get("size")
            size = f"{size / 1e6:.1f}" if isinstance(size, (int, float)) else "?"
            print(f"{entry['name']:24s} {entry['kind']:8s} {size:>8}  {entry.get('trained_on', '')}")
        return
    if not args.name:
        raise ConfigError("fetch needs a checkpoint NAME (see irislib fetch --list)")
    print(hub.fetch(args.name, manifest=args.manifest, cache_dir=args.cache_dir, allow_http=args.allow_http))


def cmd_register(args) -> None:
    from . import hub
    entry = hub.register(args.run, name=args.name, manifest_path=args.manifest, kind=args.kind)
    print(f"registered {entry['name']} in {args.manifest}")


def cmd_import_guided(args) -> None:
    from . import compat
    if args.flags and not Path(args.flags).is_file():
        raise ConfigError(f"--flags {args.flags}: no such file (a JSON object of the guided-diffusion flags)")
    flags = json.loads(Path(args.flags).read_text()) if args.flags else {}
    for item in args.flag:
        key, _, value = item.partition("=")
        flags[key.lstrip("-")] = value
    out = compat.import_guided(args.checkpoint, flags, args.out)
    print(f"imported into run directory {out}")


def _add_train_commands(sub) -> None:
    """train-vae, train-diffusion, train-refiner."""
    helps = {"vae": "train the VAE (round-pupil drafts) into a run directory (resumable)",
             "diffusion": "train the diffusion UNet into a run directory (resumable)",
             "refiner": "train a conditional refiner UNet on a VAE's reconstructions (DiffuseVAE Form 1)"}
    for kind, text in helps.items():
        p = sub.add_parser(f"train-{kind}", help=text)
        _add_experiment_args(p)
        if kind == "refiner":
            p.add_argument("--vae", required=True, help="the trained VAE run whose reconstructions condition it")
        p.set_defaults(func=lambda a, k=kind: cmd_train(a, k))


class _SamplerNames:
    """argparse choices read from diffusion.samplers.SAMPLERS (the one list of names) only when a --sampler value
    is checked or help is shown, so parsing the other commands does not import torch."""

    def _names(self) -> list[str]:
        from .diffusion.samplers import SAMPLERS
        return list(SAMPLERS)

    def __contains__(self, name) -> bool:
        return name in self._names()

    def __iter__(self):
        return iter(self._names())


def _add_sample_command(sub) -> None:
    """sample: hybrid sampling to PNGs."""
    p = sub.add_parser("sample", help="hybrid-sample iris images: VAE draft -> noise to --strength -> denoise")
    p.add_argument("--unet", required=True, help="diffusion run directory or manifest name")
    p.add_argument("--vae", help="VAE run directory or manifest name (omit for pure-noise sampling)")
    p.add_argument("--out", required=True, help="output folder for PNGs, grid.png and settings.json")
    p.add_argument("--n", type=int, default=16, help="number of images")
    p.add_argument("--strength", type=float, default=0.5, help="noise std sqrt(1 - alpha_bar) the VAE draft is "
                   "noised to: 0 = keep the draft, 1 = pure noise (a noise level, not diffusers' strength, which is "
                   "a fraction of the steps)")
    p.add_argument("--steps", type=int, default=50, help="UNet calls per image, spread from t0 down to 0")
    p.add_argument("--respacing", default="", help="instead of --steps: guided-diffusion's respacing of the whole "
                   "chain, e.g. ddim25 or 250 (the start is the grid step nearest --strength, never above a truncated "
                   "UNet's trained range)")
    p.add_argument("--sampler", default="ddim", choices=_SamplerNames(), help="ddim (deterministic), ddpm or dpm++2m")
    p.add_argument("--seed", type=int, default=0, help="image i uses seed+i, at any batch size")
    p.add_argument("--batch-size", type=int, default=16, help="images per UNet batch (memory only)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--bit-depth", type=int, default=8, choices=[8, 16], help="PNG bit depth for grey images")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sample)


def _add_evaluate_command(sub) -> None:
    """evaluate: metrics of a folder, or the comparison report."""
    p = sub.add_parser("evaluate", help="pupil-geometry metrics of a folder, or the hybrid-vs-vanilla report",
                       description="With --unet: the comparison report (report.md/.json, comparison.png with one "
                       "row of samples per method, metrics.png, strength.png, headline.png): pupil geometry, pupil "
                       "darkness and KID per method against held-out references, then an ISO/IEC 29794-6 quality "
                       "section (BIQT-Iris thresholds) and iris-code identity checks (uniqueness, and leakage "
                       "against --n-training training irises at HD --hd-threshold); --no-biometrics leaves both "
                       "out. With --images: the pupil metrics of a folder.")
    p.add_argument("--images", help="folder of generated PNGs to measure")
    p.add_argument("--unet", help="diffusion run: with it, write the hybrid-vs-vanilla comparison report")
    p.add_argument("--vae", help="VAE run for the comparison report")
    p.add_argument("--reference", help="reference images: folder or synthetic:N (default: the UNet run's training "
                   "data with --unet, synthetic:64 with --images)")
    p.add_argument("--out", required=True, help="folder for report.json and figures")
    p.add_argument("--strengths", type=lambda s: [float(x) for x in s.split(",")], default=[0.3, 0.5, 0.7],
                   help="hybrid start noise levels, comma-separated (0 = the VAE draft, 1 = pure noise)")
    p.add_argument("--steps", type=_int_list, default=[20], help="UNet calls per image, equal for every method; "
                   "a list such as 10,20,50 repeats every method at each")
    p.add_argument("--vanilla-unet", help="a full-chain UNet trained with the same budget: vanilla (pure-noise) "
                   "sampling, and hybrid at --peer-steps, when --unet is truncated (diffusion.max_strength < 1)")
    p.add_argument("--peer-steps", type=_int_list, help="UNet calls for the full-chain UNet's hybrid rows "
                   "(default: the first --steps value)")
    p.add_argument("--vanilla-budgets", type=lambda s: [x.strip() for x in s.split(",") if x.strip()], default=[],
                   help="extra vanilla rows with DDPM over this many respaced steps, e.g. 250,full (full = every "
                   "timestep: the seed's own sampling)")
    p.add_argument("--vanilla-n", type=int, help="images for the --vanilla-budgets rows (default --n; the full "
                   "chain costs about T/20 times a 20-call row)")
    p.add_argument("--rows-from", help="an earlier report folder (same --seed and --vanilla-unet): its "
                   "--vanilla-budgets rows (and grids) are reused; a row with fewer images than --vanilla-n is "
                   "topped up by drawing only the images it lacks")
    p.add_argument("--no-biometrics", action="store_true", help="leave out the ISO quality and identity sections")
    p.add_argument("--hd-threshold", type=float, default=0.34, help="fractional Hamming distance below which a "
                   "sample counts as a near-duplicate or a possibly memorised training iris")
    p.add_argument("--n-training", type=int, default=512, help="training irises the leakage check compares with")
    p.add_argument("--n-reference", type=int, default=256, help="reference images (held out from training)")
    p.add_argument("--n", type=int, default=16, help="images per method")
    p.add_argument("--seed", type=int, default=0, help="image i of every method uses seed + i")
    p.add_argument("--sampler", default="ddim", choices=_SamplerNames(), help="sampler of the equal-call rows: ddim (deterministic), ddpm or dpm++2m")
    p.set_defaults(func=cmd_evaluate)


def _add_other_commands(sub) -> None:
    """demo, synth, fetch, register, import-guided."""
    p = sub.add_parser("demo", help="train and resume a tiny pair, then hybrid-sample and evaluate the shipped 128 px "
                       "pair against vanilla at equal calls (CPU, minutes)")
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--quick", action="store_true", help="the same steps with 2 images and 2 UNet calls (for tests)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("synth", help="write N synthetic irises as PNG plus geometry.json",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="folder to write the PNGs and geometry.json into (created)")
    p.add_argument("--n", type=int, default=16, help="number of images")
    p.add_argument("--size", type=int, default=128, help="side of the square iris crops")
    p.add_argument("--frame", type=_frame_size, help="WIDTHxHEIGHT, e.g. 640x480 or 320x280: whole camera frames "
                   "(skin, lids, lashes, glints, sensor noise) with the eye at a random position and scale, instead "
                   "of iris crops; geometry.json has the exact pupil and iris in frame pixels")
    p.add_argument("--seed", type=int, default=0, help="image i is drawn from seed + i (the same at any --n)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("fetch", help="download a checkpoint listed in checkpoints_manifest.json (sha256-checked)")
    p.add_argument("name", nargs="?", help="checkpoint name")
    p.add_argument("--list", action="store_true", help="list the manifest's checkpoints")
    p.add_argument("--manifest", help="manifest path (default: the shipped checkpoints_manifest.json)")
    p.add_argument("--cache-dir", help="download cache (default: ~/.cache/irislib or $IRISLIB_CACHE)")
    p.add_argument("--allow-http", action="store_true", help="also accept plain http URL sources (default: https only)")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("register", help="add a run directory's weights to a local manifest, to share them")
    p.add_argument("run", help="run directory")
    p.add_argument("--name", help="checkpoint name in the manifest (default: the run folder's name)")
    p.add_argument("--kind", choices=["vae", "unet", "refiner"], help="what the run holds (default: from its config)")
    p.add_argument("--manifest", default="checkpoints_manifest.local.json", help="manifest to add it to")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("import-guided", help="import a guided-diffusion / improved-diffusion checkpoint")
    p.add_argument("checkpoint", help="model*.pt or ema_*.pt")
    p.add_argument("--flags", help="JSON file of the guided-diffusion flags used in training")
    p.add_argument("--flag", action="append", default=[], metavar="NAME=VALUE",
                   help="one guided-diffusion flag, e.g. --flag num_channels=128 (repeatable)")
    p.add_argument("--out", required=True, help="irislib run directory to write")
    p.set_defaults(func=cmd_import_guided)


def _add_dataset_commands(sub) -> None:
    """dataset, verify-dataset: synthetic identities (N eyes x M captures) and their verification report."""
    p = sub.add_parser("dataset", help="write N synthetic identities x M captures (folder per identity, "
                       "metadata.csv, settings.json); re-run with the same settings to continue a cut-off run",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--unet", default="iris128-unet", help="diffusion run directory or manifest name")
    p.add_argument("--vae", default="iris128-vae", help="VAE run directory or manifest name")
    p.add_argument("--out", required=True, help="dataset folder (created; an existing one must have the same settings)")
    p.add_argument("--identities", type=int, default=10, help="eyes to draw (one folder each)")
    p.add_argument("--captures", type=int, default=5, help="images of each eye")
    p.add_argument("--seed", type=int, default=0, help="identity k uses seed * 1000003 + k")
    p.add_argument("--strength", type=float, default=0.5, help="noise std the identity's VAE draft is noised to")
    p.add_argument("--steps", type=int, default=20, help="UNet calls per identity")
    p.add_argument("--sampler", default="ddim", choices=_SamplerNames(), help="ddim (deterministic), ddpm or dpm++2m")
    p.add_argument("--batch-size", type=int, default=8, help="identities per UNet batch (part of the settings)")
    p.add_argument("--refine-strength", type=float, default=0.0, help="light diffusion pass over every capture "
                   "with the identity's seed (0 = none)")
    p.add_argument("--refine-steps", type=int, default=2, help="UNet calls of that pass")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--verify", action="store_true", help="also write the verification report (verify-dataset)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_dataset)

    p = sub.add_parser("verify-dataset", help="genuine/impostor HDs, d', EER, FNMR at FMR 1e-3 / 1e-4, DET curve "
                       "of a folder-per-eye iris set (<folder>/<eye>/<image> or <folder>/<subject>/<L|R>/<image>)")
    p.add_argument("folder", help="the dataset: one folder of images per eye (each folder holding images is one "
                   "identity, named by its path: 1001/L and 1001/R are two)")
    p.add_argument("--out", help="report folder (default: the dataset folder)")
    p.add_argument("--threshold", type=float, default=0.34, help="copy threshold: HD below which two identities, "
                   "or an identity and a training iris, count as the same eye (its FNMR and FMR are also reported; "
                   "verification uses the FMR 1e-3 / 1e-4 thresholds of the impostor HDs)")
    p.add_argument("--min-images", type=int, default=2, help="identities with fewer readable images are left out "
                   "and listed (one image has no genuine pair)")
    p.add_argument("--training", help="leakage check against: a folder of training images, a run folder or "
                   "manifest name (its training data), synthetic:N, or none (default: only a manifest name in the "
                   "dataset's settings.json with synthetic training data; a run folder it names is not opened)")
    p.add_argument("--n-training", type=int, default=512, help="training images compared with")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_verify_dataset)


def cmd_dataset(args) -> None:
    from .generate.dataset import dataset
    out = dataset(args.out, args.unet, args.vae, args.identities, args.captures, seed=args.seed,
                  strength=args.strength, steps=args.steps, sampler=args.sampler, batch_size=args.batch_size,
                  refine_strength=args.refine_strength, refine_steps=args.refine_steps, device=args.device,
                  progress=not args.quiet)
    if args.verify and not (out / "verify.json").exists():   # generate/ never imports evaluation/: the CLI verifies
        from .evaluation.verify import verify_dataset
        verify_dataset(out, training=args.unet, progress=not args.quiet)   # leakage against the UNet given
    print(f"dataset of {args.identities} identities x {args.captures} captures in {out}")


def cmd_verify_dataset(args) -> None:
    from .evaluation.verify import verify_dataset
    rep = verify_dataset(args.folder, args.out, threshold=args.threshold, training=args.training,
                         n_training=args.n_training, min_images=args.min_images, progress=not args.quiet)
    print(f"{rep['images']} images, {rep['identities']} identities of {rep['subjects']} subjects: genuine HD "
          f"{rep['genuine']['mean']:.3f}, impostor {rep['impostor']['mean']:.3f}, d' {rep['d_prime']:.2f}, EER "
          f"{100 * rep['eer']:.2f} %, FNMR {100 * rep['fnmr_at_fmr_1e-3']:.2f} % at FMR 1e-3 (HD <= "
          f"{rep['threshold_at_fmr_1e-3']:.3f}); closest identities HD "
          f"{_hd(rep['uniqueness']['closest'])}, closest training iris HD "
          f"{_hd((rep['leakage'] or {}).get('closest'))}; report in {args.out or args.folder}/verify.md")


def _hd(pair: dict | None) -> str:
    return "n/a" if not pair else f"{pair['hd']:.3f}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="irislib", description="Near-infrared iris synthesis: VAE + diffusion "
                                     "hybrid sampling. Every subcommand has --help.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_train_commands, _add_sample_command, _add_evaluate_command, _add_other_commands,
                _add_dataset_commands):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        args.func(args)
    except (ConfigError, OSError, ValueError) as e:  # user errors (incl. a locked run): one line, no traceback
        print(f"irislib {args.command}: error: {e}", file=sys.stderr)
        return 2
    finally:
        if args.command.startswith("train-"):  # under torchrun: leave the process group cleanly
            from .train.distributed import cleanup
            cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
