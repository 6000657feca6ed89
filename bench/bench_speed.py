"""finsent's training and scoring against the reference tools, in one process, on the same data.

    PYTHONPATH=src python bench/bench_speed.py --out bench/results/NAME.json [options]

Sections, each written to the JSON as soon as it ends (a run cut short keeps what it finished):

  minilm_trainer    HF Trainer: batch 32, dynamic padding (DataCollatorWithPadding), bf16 on CUDA
                    (fp32 on CPU, which has no bf16 units); macro-F1 on the validation set after it.
  minilm_finsent    ``finsent.training.train.fit`` with the settings finsent uses on the device (params.yaml,
                    ``train.on_cuda`` on a GPU; FGM off, as in the Trainer), evaluated after every epoch: samples/s and the time it
                    takes to reach the Trainer's macro-F1.
  sweep             optional further finsent settings (``--sweep 512:6e-4:8``), the same way.
  scoring           HF ``pipeline`` against ``finsent.training.score.Scorer`` on the same texts, tokenising
                    included, with the agreement of their predictions.
  bertbase_*        a random-initialised bert-base-size model: a timed run of N steps of each trainer.

Throughput counts samples (texts); model FLOP utilisation counts 6 (training) or 2 (inference) x
non-embedding parameters x real (non-pad) tokens, over the time and the peak (``--peak-tflops``;
on CPU a measured fp32 matmul peak). This script imports only torch, transformers, numpy, pandas,
scikit-learn and finsent's config/data/features/model/train/score modules, so that it runs on a
bare GPU machine with ``PYTHONPATH=src``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import platform
import resource
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "DO_NOT_TRACK": "true",
    # Idle OpenMP threads sleep instead of spinning: on a shared CPU, spinning threads that wait for a
    # descheduled peer made both trainers up to 10x slower. Read once, when torch loads.
    "OMP_WAIT_POLICY": "PASSIVE",
}.items():
    os.environ.setdefault(_key, _value)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from finsent.config import PLAIN_FINE_TUNE, TrainParams, load_params  # noqa: E402
from finsent.data.frames import read_dataset, stratified_sample  # noqa: E402
from finsent.training.features import Encoded, encode_texts  # noqa: E402
from finsent.training.model import choose_device, load_classifier, resolve_base_model  # noqa: E402
from finsent.training.score import Scorer, predict_proba_encoded  # noqa: E402
from finsent.training.train import fit, params_for_device, set_seed  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GOALS = {"cuda": {"train": 15.0, "score": 15.0}, "cpu": {"train": 1.5, "score": 2.0}}
H200_BF16_DENSE_TFLOPS = 989.0


# --- measuring ------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict[str, float]:
    if device.type == "cuda":
        return {"peak_gpu_mib": torch.cuda.max_memory_allocated(device) / 2**20}
    # ru_maxrss only grows over the process: a later section reports at least an earlier one's peak.
    return {"process_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def non_embedding_parameters(model: torch.nn.Module) -> int:
    return sum(t.numel() for name, t in model.named_parameters() if "embeddings" not in name)


def model_flop_utilisation(flops_per_token: float, tokens: float, seconds: float, peak_tflops: float | None) -> float | None:
    if not peak_tflops or seconds <= 0:
        return None
    return flops_per_token * tokens / seconds / (peak_tflops * 1e12)


def measured_cpu_peak_tflops(size: int = 1024, repeats: int = 30) -> float:
    """fp32 matmul peak of torch's CPU threads, the ceiling MFU is measured against: the better of all
    threads together and one thread times their number (on a shared machine the other cores may be
    busy). Many short tries, so that at least one runs undisturbed."""
    a, b = torch.randn(size, size), torch.randn(size, size)

    def best_rate() -> float:
        a @ b
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        return 2 * size**3 / best / 1e12

    threads = torch.get_num_threads()
    together = best_rate()
    torch.set_num_threads(1)
    try:
        alone = best_rate()
    finally:
        torch.set_num_threads(threads)
    return max(together, alone * threads)


def macro_f1(model: torch.nn.Module, encoded: Encoded, labels: np.ndarray, device: torch.device) -> float:
    probs = predict_proba_encoded(model, encoded, batch_size=512, device=device)
    return float(f1_score(labels, probs.argmax(axis=1), average="macro"))


def release(*objects: Any) -> None:
    del objects
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Timer:
    """Wall and process CPU time of a block, the device's queue drained at both ends. CPU time
    stays meaningful on a shared machine, where other processes stretch the wall time."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> Timer:
        sync(self.device)
        self.start, self.cpu_start = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        sync(self.device)
        self.seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.process_time() - self.cpu_start


# --- the two trainers -----------------------------------------------------------------------------


def hf_trainer_run(
    model: torch.nn.Module,
    tokenizer,
    encoded: Encoded,
    labels: np.ndarray,
    p: TrainParams,
    device: torch.device,
    *,
    batch_size: int,
    epochs: float | None = None,
    max_steps: int | None = None,
    learning_rate: float | None = None,
) -> dict[str, float]:
    """The reference: HF Trainer with dynamic padding; returns seconds and samples trained."""
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    rows = [{"input_ids": encoded.ids[o : o + n].tolist(), "labels": int(y)} for o, n, y in zip(encoded.offsets, encoded.lengths, labels)]
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=batch_size,
            num_train_epochs=epochs or 1.0,
            max_steps=max_steps or -1,
            learning_rate=learning_rate or p.learning_rate,
            weight_decay=p.weight_decay,
            warmup_steps=p.warmup_fraction,  # a float below 1 is a fraction of the steps
            max_grad_norm=p.grad_clip,
            lr_scheduler_type="linear",
            bf16=device.type == "cuda",
            use_cpu=device.type == "cpu",
            seed=p.seed,
            report_to="none",
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=rows,
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
        )
        with Timer(device) as timer:
            trainer.train()
        steps = trainer.state.global_step
    samples = steps * batch_size if max_steps else len(rows) * (epochs or 1.0)
    return {"seconds": timer.seconds, "cpu_seconds": timer.cpu_seconds, "samples": float(samples), "steps": steps}


def finsent_run(
    model: torch.nn.Module,
    encoded: Encoded,
    labels: np.ndarray,
    p: TrainParams,
    device: torch.device,
    *,
    evaluate: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """``finsent.training.train.fit``, evaluated (outside the timed span) after every epoch."""
    steps_per_epoch = math.ceil(len(labels) / p.batch_size)
    total_steps = max(1, math.ceil(p.epochs * steps_per_epoch))
    evaluations: list[dict[str, float]] = []
    clock = {"start": 0.0, "paused": 0.0, "cpu_start": 0.0, "cpu_paused": 0.0}

    def on_step(step: int, loss: float) -> None:
        if evaluate is None or (step % steps_per_epoch and step != total_steps):
            return
        sync(device)
        paused_at, cpu_paused_at = time.perf_counter(), time.process_time()
        f1 = evaluate()
        model.train()
        evaluations.append(
            {"epoch": step / steps_per_epoch, "step": step, "train_seconds": paused_at - clock["start"] - clock["paused"], "macro_f1": f1}
        )
        clock["paused"] += time.perf_counter() - paused_at
        clock["cpu_paused"] += time.process_time() - cpu_paused_at

    sync(device)
    clock["start"], clock["cpu_start"] = time.perf_counter(), time.process_time()
    stats = fit(model, encoded, labels, p, log=lambda _: None, on_step=on_step)
    sync(device)
    seconds = time.perf_counter() - clock["start"] - clock["paused"]
    cpu_seconds = time.process_time() - clock["cpu_start"] - clock["cpu_paused"]
    samples = stats["samples_per_second"] * stats["seconds"]  # exact: fit counts them
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "samples": float(round(samples)),
        "steps": stats["steps"],
        "evaluations": evaluations,
    }


def time_to_reach(evaluations: list[dict[str, float]], target: float | None) -> float | None:
    for e in evaluations:
        if target is not None and e["macro_f1"] >= target:
            return e["train_seconds"]
    return None


# --- the bench ------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = choose_device(args.device)
        self.out = Path(args.out)
        self.started = time.perf_counter()
        self.results: dict[str, Any] = {"meta": self.meta(), "sections": {}, "summary": {}}
        params = load_params(args.params)
        # The Trainer runs the plain objective, so finsent's loop does too (FGM would double its work).
        self.base = dataclasses.replace(
            params.train, device=str(self.device), progress=False, checkpoint_every_minutes=0.0, **PLAIN_FINE_TUNE
        )
        self.score_batch_size = args.score_batch_size or params.evaluate.batch_size
        self.encoder = args.encoder or params.train.base_model
        self.trained_minilm: torch.nn.Module | None = None

    def meta(self) -> dict[str, Any]:
        args = self.args
        meta: dict[str, Any] = {
            "args": vars(args),
            "device": str(self.device),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        }
        if self.device.type == "cuda":
            meta["gpu"] = torch.cuda.get_device_name(self.device)
            meta["peak_tflops"] = args.peak_tflops or H200_BF16_DENSE_TFLOPS
            meta["peak_tflops_source"] = "given" if args.peak_tflops else "H200 bf16 dense (default)"
        else:
            meta["peak_tflops"] = args.peak_tflops or measured_cpu_peak_tflops()
            meta["peak_tflops_source"] = "given" if args.peak_tflops else "measured fp32 matmul peak (see measured_cpu_peak_tflops)"
        return meta

    @property
    def peak_tflops(self) -> float | None:
        return self.results["meta"]["peak_tflops"]

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def save(self) -> None:
        self.results["meta"]["elapsed_seconds"] = self.elapsed()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.results, indent=2, default=str))
        os.replace(tmp, self.out)

    def section(self, name: str, body: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        """Run one section; record its result or its error, and save the JSON either way."""
        if self.args.time_budget and self.elapsed() > self.args.time_budget:
            self.results["sections"][name] = {"skipped": f"time budget of {self.args.time_budget}s spent"}
            self.save()
            return None
        print(f"[{self.elapsed():6.1f}s] {name} ...", flush=True)
        reset_peak_memory(self.device)
        try:
            result = body()
            result.update(peak_memory(self.device))
        except Exception as exc:  # noqa: BLE001 -- one failed section must not lose the others
            traceback.print_exc()
            result = {"error": f"{type(exc).__name__}: {exc}"}
        self.results["sections"][name] = result
        self.save()
        print(
            f"[{self.elapsed():6.1f}s] {name}: {json.dumps({k: v for k, v in result.items() if k != 'evaluations'}, default=str)[:400]}",
            flush=True,
        )
        return result

    # --- data ---

    def load_data(self) -> None:
        args = self.args
        train_df = read_dataset(REPO / args.train_csv if not Path(args.train_csv).is_absolute() else args.train_csv)
        valid_df = read_dataset(REPO / args.valid_csv if not Path(args.valid_csv).is_absolute() else args.valid_csv)
        train_df = stratified_sample(train_df, args.max_train_rows, self.base.seed)
        self.tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(self.encoder))
        self.train_labels = train_df["label"].to_numpy(dtype=np.int64)
        self.valid_labels = valid_df["label"].to_numpy(dtype=np.int64)
        self.valid_texts = valid_df["text"].tolist()
        self.train = encode_texts(self.tokenizer, train_df["text"].tolist(), self.base.max_length)
        self.valid = encode_texts(self.tokenizer, self.valid_texts, self.base.max_length)
        self.mean_train_tokens = float(self.train.lengths.mean())
        self.results["meta"]["data"] = {
            "train_rows": len(self.train),
            "valid_rows": len(self.valid),
            "mean_train_tokens": self.mean_train_tokens,
            "max_train_tokens": int(self.train.lengths.max()),
        }

    def fresh_minilm(self) -> torch.nn.Module:
        set_seed(self.base.seed)
        _, model = load_classifier(self.encoder)
        return model

    def training_result(self, model: torch.nn.Module, run: dict[str, Any], **extra: Any) -> dict[str, Any]:
        tokens = run["samples"] * self.mean_train_tokens
        flops_per_token = 6 * non_embedding_parameters(model)
        return {
            "samples_per_second": run["samples"] / run["seconds"],
            "samples_per_cpu_second": run["samples"] / run["cpu_seconds"],
            "seconds": run["seconds"],
            "samples": run["samples"],
            "steps": run["steps"],
            "mfu": model_flop_utilisation(flops_per_token, tokens, run["seconds"], self.peak_tflops),
            "non_embedding_parameters": non_embedding_parameters(model),
            **extra,
        }

    def trainer_run(self, model: Any, **settings: Any) -> dict[str, Any]:
        """The HF Trainer on this bench's training rows, at its batch size."""
        return hf_trainer_run(
            model,
            self.tokenizer,
            self.train,
            self.train_labels,
            self.base,
            self.device,
            batch_size=self.args.trainer_batch_size,
            **settings,
        )

    # --- sections ---

    def minilm_trainer(self) -> dict[str, Any]:
        model = self.fresh_minilm()
        run = self.trainer_run(model, epochs=self.args.trainer_epochs, learning_rate=self.args.trainer_lr)
        f1 = macro_f1(model, self.valid, self.valid_labels, self.device)
        result = self.training_result(
            model,
            run,
            macro_f1=f1,
            epochs=self.args.trainer_epochs,
            batch_size=self.args.trainer_batch_size,
            learning_rate=self.args.trainer_lr or self.base.learning_rate,
            precision="bf16" if self.device.type == "cuda" else "fp32",
            time_to_target_seconds=run["seconds"],
        )
        release(model)
        return result

    def finsent_params(self, **overrides: Any) -> TrainParams:
        p = params_for_device(self.base, self.device)  # what ``finsent train`` uses on this device
        given = {"batch_size": self.args.batch_size, "learning_rate": self.args.lr, "epochs": self.args.epochs}
        settings = {"compile": self.args.compile} | {k: v for k, v in given.items() if v is not None} | overrides
        return dataclasses.replace(p, **settings)

    def minilm_finsent(self, p: TrainParams, *, keep: bool) -> dict[str, Any]:
        model = self.fresh_minilm()
        evaluate = lambda: macro_f1(model, self.valid, self.valid_labels, self.device)  # noqa: E731
        run = finsent_run(model, self.train, self.train_labels, p, self.device, evaluate=evaluate)
        target = self.target_f1()
        result = self.training_result(
            model,
            run,
            macro_f1=run["evaluations"][-1]["macro_f1"],
            epochs=p.epochs,
            batch_size=p.batch_size,
            learning_rate=p.learning_rate,
            pad_to_multiple_of=p.pad_to_multiple_of,
            compile=p.compile,
            precision=p.precision,
            target_macro_f1=target,
            time_to_target_seconds=time_to_reach(run["evaluations"], target),
            evaluations=run["evaluations"],
        )
        if keep:
            self.trained_minilm = model.eval()
        else:
            release(model)
        return result

    def target_f1(self) -> float | None:
        trainer = self.results["sections"].get("minilm_trainer", {})
        return trainer.get("macro_f1", self.args.target_f1)

    def scoring(self) -> dict[str, Any]:
        """The HF pipeline at each ``--pipeline-batch-sizes`` against finsent's Scorer, on the same
        texts, in ``--score-repeats`` rounds (medians count); the speed-up is over the fastest pipeline."""
        from transformers import pipeline

        n = self.args.score_texts
        texts = (self.valid_texts * math.ceil(n / len(self.valid_texts)))[:n]
        model = self.trained_minilm if self.trained_minilm is not None else self.fresh_minilm()
        model = model.to(self.device).eval()
        tokens = float(encode_texts(self.tokenizer, texts, self.base.max_length).lengths.sum())
        flops_per_token = 2 * non_embedding_parameters(model)
        valid_n = min(len(self.valid_texts), n)
        label_index = {label: i for i, label in model.config.id2label.items()}

        def rates(seconds: float, cpu_seconds: float, probs: np.ndarray, **extra: Any) -> dict[str, Any]:
            return {
                "texts_per_second": n / seconds,
                "seconds": seconds,
                "texts_per_cpu_second": n / cpu_seconds,
                "mfu": model_flop_utilisation(flops_per_token, tokens, seconds, self.peak_tflops),
                "valid_macro_f1": float(f1_score(self.valid_labels[:valid_n], probs[:valid_n].argmax(1), average="macro")),
                **extra,
            }

        def pipeline_probs(outputs: list[list[dict]]) -> np.ndarray:
            probs = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
            for i, scores in enumerate(outputs):
                for item in scores:
                    probs[i, label_index[item["label"]]] = item["score"]
            return probs

        pipes = {
            bs: pipeline("text-classification", model=model, tokenizer=self.tokenizer, device=self.device, top_k=None, batch_size=bs)
            for bs in self.args.pipeline_batch_sizes
        }
        scorer = Scorer(self.tokenizer, model, max_length=self.base.max_length, batch_size=self.score_batch_size, device=str(self.device))
        for pipe in pipes.values():  # warm-up
            pipe(texts[:256], truncation=True, max_length=self.base.max_length)
        scorer.predict_proba(texts[:256])
        # Rounds of every contender in turn, so that a change of load on a shared machine hits all alike.
        timings: dict[Any, list[Timer]] = {key: [] for key in [*pipes, "finsent"]}
        for _ in range(self.args.score_repeats):
            for bs, pipe in pipes.items():
                with Timer(self.device) as timer:
                    outputs = pipe(texts, truncation=True, max_length=self.base.max_length)
                timings[bs].append(timer)
            with Timer(self.device) as timer:
                finsent_probs = scorer.predict_proba(texts)  # tokenising included; returns host arrays
            timings["finsent"].append(timer)
        probs = pipeline_probs(outputs)  # of the last pipeline: all agree

        def median(runs: list[Timer]) -> Timer:
            return sorted(runs, key=lambda t: t.seconds)[len(runs) // 2]

        pipelines = {
            f"batch_{bs}": rates(
                median(timings[bs]).seconds,
                median(timings[bs]).cpu_seconds,
                probs,
                batch_size=bs,
                precision="fp32",
                all_seconds=[t.seconds for t in timings[bs]],
            )
            for bs in pipes
        }
        finsent = rates(
            median(timings["finsent"]).seconds,
            median(timings["finsent"]).cpu_seconds,
            finsent_probs,
            batch_size=self.score_batch_size,
            precision="bf16 autocast" if self.device.type == "cuda" else "fp32",
            all_seconds=[t.seconds for t in timings["finsent"]],
        )
        best = max(pipelines.values(), key=lambda r: r["texts_per_second"])
        result = {
            "texts": n,
            "tokens": tokens,
            "pipeline": best,
            "pipelines": pipelines,
            "finsent": finsent,
            "speedup": finsent["texts_per_second"] / best["texts_per_second"],
            "cpu_time_speedup": finsent["texts_per_cpu_second"] / best["texts_per_cpu_second"],
            "label_agreement": float((probs.argmax(1) == finsent_probs.argmax(1)).mean()),
            "max_abs_probability_difference": float(np.abs(probs - finsent_probs).max()),
        }
        release(scorer, pipes)
        return result

    def bertbase_model(self) -> torch.nn.Module:
        from transformers import BertConfig, BertForSequenceClassification

        a = self.args
        set_seed(self.base.seed)
        config = BertConfig(
            vocab_size=self.tokenizer.vocab_size,
            hidden_size=a.bert_hidden,
            num_hidden_layers=a.bert_layers,
            num_attention_heads=max(1, a.bert_hidden // 64),
            intermediate_size=4 * a.bert_hidden,
            num_labels=3,
        )
        return BertForSequenceClassification(config)

    def bertbase_trainer(self) -> dict[str, Any]:
        model = self.bertbase_model()
        run = self.trainer_run(model, epochs=1e6, max_steps=self.args.bert_steps)
        result = self.training_result(model, run, batch_size=self.args.trainer_batch_size)
        release(model)
        return result

    def bertbase_finsent(self) -> dict[str, Any]:
        model = self.bertbase_model()
        p = self.finsent_params(compile=self.args.bert_compile or self.args.compile)
        p = dataclasses.replace(p, epochs=self.args.bert_steps * p.batch_size / len(self.train_labels))
        run = finsent_run(model, self.train, self.train_labels, p, self.device)
        result = self.training_result(model, run, batch_size=p.batch_size, compile=p.compile)
        release(model)
        return result

    # --- report ---

    def summarise(self) -> None:
        s = self.results["sections"]
        goals = GOALS["cuda" if self.device.type == "cuda" else "cpu"]
        out: dict[str, Any] = {"goals": goals}

        def ratio(a: str, b: str, key: str = "samples_per_second") -> float | None:
            if key in s.get(a, {}) and key in s.get(b, {}):
                return s[a][key] / s[b][key]
            return None

        out["minilm_train_speedup"] = ratio("minilm_finsent", "minilm_trainer")
        out["bertbase_train_speedup"] = ratio("bertbase_finsent", "bertbase_trainer")
        if "speedup" in s.get("scoring", {}):
            out["score_speedup"] = s["scoring"]["speedup"]
        # Process CPU time: the same comparison with other processes' load taken out (CPU runs).
        out["cpu_time_ratios"] = {
            "minilm_train": ratio("minilm_finsent", "minilm_trainer", "samples_per_cpu_second"),
            "bertbase_train": ratio("bertbase_finsent", "bertbase_trainer", "samples_per_cpu_second"),
            "score": s.get("scoring", {}).get("cpu_time_speedup"),
        }
        if "macro_f1" in s.get("minilm_finsent", {}) and "macro_f1" in s.get("minilm_trainer", {}):
            out["minilm_macro_f1"] = {"finsent": s["minilm_finsent"]["macro_f1"], "trainer": s["minilm_trainer"]["macro_f1"]}
            out["minilm_f1_not_lower"] = s["minilm_finsent"]["macro_f1"] >= s["minilm_trainer"]["macro_f1"]
            t_trainer, t_finsent = s["minilm_trainer"]["seconds"], s["minilm_finsent"]["time_to_target_seconds"]
            out["time_to_trainer_f1_speedup"] = t_trainer / t_finsent if t_finsent else None
        for key, goal in (("minilm_train_speedup", "train"), ("bertbase_train_speedup", "train"), ("score_speedup", "score")):
            if out.get(key) is not None:
                out[key.replace("speedup", "meets_goal")] = out[key] >= goals[goal]
        self.results["summary"] = out
        self.save()

    def table(self) -> str:
        s = self.results["sections"]
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        lines = [f"{'section':<22}{'per s':>10}{'macro-F1':>10}{'to F1 (s)':>11}{'MFU':>9}{'peak MiB':>10}"]
        rows: list[tuple[str, dict]] = [(k, v) for k, v in s.items() if k not in {"setup", "scoring"}]
        if "pipeline" in s.get("scoring", {}):
            rows += [(f"score pipeline {k[6:]}", v) for k, v in s["scoring"]["pipelines"].items()]
            rows += [("score finsent", s["scoring"]["finsent"])]
        for name, r in rows:
            if "error" in r or "skipped" in r:
                lines.append(f"{name:<22}{r.get('error') or r.get('skipped')}")
                continue
            rate = r.get("samples_per_second", r.get("texts_per_second"))
            mem = r.get("peak_gpu_mib", r.get("process_peak_rss_mib", s.get("scoring", {}).get("peak_gpu_mib")))
            lines.append(
                f"{name:<22}{fmt(rate, ',.0f'):>10}{fmt(r.get('macro_f1', r.get('valid_macro_f1')), '.4f'):>10}"
                f"{fmt(r.get('time_to_target_seconds'), '.1f'):>11}{fmt(r.get('mfu'), '.2%'):>9}{fmt(mem, ',.0f'):>10}"
            )
        summary = {k: v for k, v in self.results["summary"].items() if k != "goals"}
        lines.append(json.dumps(summary, default=str))
        return "\n".join(lines)


def parse_sweep(spec: str) -> list[dict[str, float]]:
    """``"512:6e-4:8,1024:1e-3"`` -> [{batch_size, learning_rate, epochs?}, ...]."""
    configs = []
    for item in filter(None, spec.split(",")):
        parts = item.split(":")
        config: dict[str, float] = {"batch_size": int(parts[0]), "learning_rate": float(parts[1])}
        if len(parts) > 2:
            config["epochs"] = float(parts[2])
        configs.append(config)
    return configs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/speed.json")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--params", default=str(REPO / "params.yaml"))
    parser.add_argument("--encoder", default=None, help="base model folder (default: train.base_model)")
    parser.add_argument("--train-csv", default="datasets/tfns/sent_train.csv")
    parser.add_argument("--valid-csv", default="datasets/tfns/sent_valid.csv")
    parser.add_argument("--max-train-rows", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    # The reference.
    parser.add_argument("--trainer-epochs", type=float, default=1.0)
    parser.add_argument("--trainer-batch-size", type=int, default=32)
    parser.add_argument("--trainer-lr", type=float, default=None, help="default: train.learning_rate")
    parser.add_argument("--target-f1", type=float, default=0.811, help="used when the Trainer section is skipped")
    # finsent: default settings are those of params.yaml for the device.
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--compile", action="store_true", help="torch.compile finsent's model")
    parser.add_argument("--sweep", default="", help="more finsent settings: BATCH:LR[:EPOCHS],...")
    # Scoring.
    parser.add_argument("--score-texts", type=int, default=20000, help="validation texts repeated to this many")
    parser.add_argument("--score-batch-size", type=int, default=None, help="default: evaluate.batch_size")
    parser.add_argument(
        "--pipeline-batch-sizes",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1, 32],
        help="comma-separated; 1 is the pipeline's default",
    )
    parser.add_argument("--score-repeats", type=int, default=2, help="rounds of every scorer; the median counts")
    # bert-base size.
    parser.add_argument("--bert-steps", type=int, default=100)
    parser.add_argument("--bert-layers", type=int, default=12)
    parser.add_argument("--bert-hidden", type=int, default=768)
    parser.add_argument("--bert-compile", action="store_true")
    # Switches.
    parser.add_argument("--skip-trainer", action="store_true")
    parser.add_argument("--skip-finsent", action="store_true")
    parser.add_argument("--skip-scoring", action="store_true")
    parser.add_argument("--skip-bert-base", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--time-budget", type=float, default=None, help="seconds: later sections are skipped")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bench = Bench(args)
    bench.section("setup", lambda: (bench.load_data(), {"seconds": bench.elapsed()})[1])
    if "error" in bench.results["sections"]["setup"]:
        raise SystemExit("bench: setup failed; see the traceback above")
    if not args.skip_trainer:
        bench.section("minilm_trainer", bench.minilm_trainer)
    if not args.skip_finsent:
        bench.section("minilm_finsent", lambda: bench.minilm_finsent(bench.finsent_params(), keep=True))
        for config in parse_sweep(args.sweep):
            name = f"sweep_{config['batch_size']}_{config['learning_rate']:g}_{config.get('epochs', 'default')}"
            bench.section(name, lambda c=config: bench.minilm_finsent(bench.finsent_params(**c), keep=False))
    if not args.skip_scoring:
        bench.section("scoring", bench.scoring)
    if not args.skip_bert_base:
        if not args.skip_trainer:
            bench.section("bertbase_trainer", bench.bertbase_trainer)
        if not args.skip_finsent:
            bench.section("bertbase_finsent", bench.bertbase_finsent)
    bench.summarise()
    print(bench.table(), flush=True)
    print(f"wrote {bench.out}", flush=True)
    return bench.results


if __name__ == "__main__":
    main(sys.argv[1:])
