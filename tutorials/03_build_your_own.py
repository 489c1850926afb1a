# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial 3: Build your own equivariant architecture
#
# irrepnet's models are made of small layers that each declare what they read and write,
# with irreps. This notebook builds a new architecture from those layers, the way you would
# for your own research, and then gives it everything the built-in models get:
#
# 1. **compose** a tensor-product network from irrepnet's layers into a `SequentialModel`;
# 2. make a deliberate **irreps mistake** and watch the composition check catch it at
#    construction, before any tensor flows;
# 3. **register** it, so that the registry, the trainer and the benchmark harness know it;
# 4. **audit** its equivariance in float32 and float64;
# 5. **train** it with the same loop as every other model;
# 6. **benchmark** it against two models of the zoo with the same harness as `irrepnet bench`.
#
# It helps to have read tutorial 1 (irreps, spherical harmonics, tensor products, gates);
# tutorial 2 introduces the twelve-body task and its baselines.

# %%
# %matplotlib inline
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import Image, Markdown, display
from matplotlib.ticker import MaxNLocator

import irrepnet
from irrepnet import IrrepsMismatchError, SequentialModel, audit_all, register_model
from irrepnet import keys as K
from irrepnet import metrics as M
from irrepnet.bench import adhoc_suite, run_suite
from irrepnet.data import evaluate_baselines, find_dmol_file
from irrepnet.nn import (
    Gate,
    GraphConstruction,
    NodeInputs,
    RadialEmbedding,
    SphericalHarmonicsEdgeAttrs,
    TensorProductConv,
    VectorHead,
)
from irrepnet.registry import unregister_model
from irrepnet.tasks import load_task, task_spec
from irrepnet.train import TrainConfig, train_registered

FULL = os.environ.get("IRREPNET_FULL", "0") == "1"
EPOCHS, STEPS_PER_EPOCH = (8, 25) if FULL else (4, 25)  # optimiser steps = epochs x steps per epoch

torch.set_num_threads(1)  # the steadiest timings on a small, busy CPU
torch.manual_seed(0)
plt.rcParams.update({"figure.dpi": 70, "font.size": 9})

# the dmol book's trajectory when it can be found (see tutorial 2), else irrepnet's reference trajectory
DATA = find_dmol_file()
task = load_task("twelve_body", data=DATA, history=2)
print("irrepnet", irrepnet.__version__, "| FULL =", FULL)
print("data:", task.train.source)
print("task inputs:", {k: str(v) if v is not None else None for k, v in task.spec.inputs.items()})

# %% [markdown]
# ## 1. The layers
#
# Every layer is an `IrrepsModule`: it takes the batch dictionary, adds the fields it
# writes, and declares `irreps_in` (fields read) and `irreps_out` (fields written). A
# tensor-field-network-style model needs six kinds:
#
# | layer | reads | writes |
# |---|---|---|
# | `NodeInputs(task.inputs)` | the task's vector/scalar node inputs | `node_features` = `1x0e` + those inputs |
# | `GraphConstruction("radius", r=...)` | `pos` | `edge_index`, `edge_vec` (`1o`), `edge_len` |
# | `SphericalHarmonicsEdgeAttrs(lmax)` | `edge_vec` | `edge_sh`, $Y^0 \dots Y^{l_{max}}$ |
# | `RadialEmbedding(n_basis, r_max)` | `edge_len` | `edge_embedding` (`n_basis x 0e`) |
# | `TensorProductConv(irreps_in, irreps_out, irreps_sh, n_basis)` | `node_features`, `edge_index`, `edge_sh`, `edge_embedding` | `node_features` |
# | `Gate(hidden)` | `node_features` (with extra gate scalars) | `node_features` = `hidden` |
# | `VectorHead(irreps)` | `node_features` | `displacement` (`1o`) |
#
# Positions never become node features, only their differences (edge vectors) do: that is
# what makes the model translation invariant. The one piece of arithmetic to get right is
# the gate's: a gate returns `hidden`, but it needs one extra scalar per gated ($l > 0$)
# irrep as input, so the layer before it must output `gate.irreps_in`, not `hidden`:

# %%
hidden = "16x0e + 8x1o + 4x2e"
gate = Gate(hidden)
print(f"Gate({hidden!r}):")
print(f"  reads  node_features {gate.irreps_in[K.NODE_FEATURES]}   ({gate.parts.gates} are the gates)")
print(f"  writes node_features {gate.irreps_out[K.NODE_FEATURES]}")
inputs = NodeInputs(task.spec.inputs)
print(f"NodeInputs writes node_features {inputs.irreps_out[K.NODE_FEATURES]}  (1, then vel_history: v1 and v2)")

# %% [markdown]
# ## 2. Composing a model, and a mistake caught at construction
#
# `SequentialModel(*layers, irreps_in=task.inputs, outputs=[...], symmetry=...)` chains the
# layers and **checks the chain when it is built**: every field a layer reads must have been
# written before (by the task's inputs or an earlier layer) *with the same irreps*. A first
# attempt with the classic mistake, giving the convolution the gate's *output* irreps:

# %%
R_MAX, N_BASIS, LMAX = 3.5, 8, 2
sh = SphericalHarmonicsEdgeAttrs(LMAX)
try:
    SequentialModel(
        inputs,
        GraphConstruction("radius", r=R_MAX),
        sh,
        RadialEmbedding(N_BASIS, R_MAX),
        TensorProductConv(
            inputs.irreps_out[K.NODE_FEATURES], hidden, sh.sh_irreps, N_BASIS, normalization="mean"
        ),  # wrong: the gate reads more than `hidden`
        Gate(hidden),
        VectorHead(Gate(hidden).irreps_out[K.NODE_FEATURES]),
        irreps_in=task.spec.inputs,
        outputs=[K.DISPLACEMENT],
        symmetry="E(3)",
    )
except IrrepsMismatchError as err:
    print(f"{type(err).__name__}: {err}")
    print(f"\nthe error object carries the details: field {err.field_name!r}, expected {err.expected}, got {err.got}")

# %% [markdown]
# The message names the field, the layer that reads it, the layer that wrote it and both
# irreps. Without the check, this model would have failed inside e3nn's `Gate` on the first
# batch with a shape error, or worse, with matching dimensions and silently wrong semantics
# (two irreps lists of the same total dimension are easy to confuse).
#
# Another mistake the layers refuse: a **parity** error. A displacement is a polar vector
# (`1o`); if the last features only hold pseudovectors (`1e`), no equivariant linear map can
# produce one, and `VectorHead` says so:

# %%
try:
    VectorHead("16x0e + 8x1e")
except ValueError as err:
    print(f"{type(err).__name__}: {err}")

# %% [markdown]
# ## 3. The architecture, as a registered model
#
# The fixed version, generalised to any number of convolution + gate blocks. A registered
# model is a **config dataclass** (its defaults are the default configuration, and every
# field can be overridden by name: `build_model(name, spec, layers=3)`, `--model-set layers=3`
# on the command line) plus a **builder** `(config, task_spec) -> IrrepsModel`, decorated with
# `@register_model`. Reading the inputs from `task.inputs` (through `NodeInputs`) makes the same
# builder work on any task.
#
# `normalization="mean"` averages messages over each node's neighbours; the cutoff
# `r_max = 3.5` is longer than the polymer, so every bead sees every other one here.

# %%
NAME = "gated-tp"


@dataclass
class GatedTPConfig:
    hidden: str = "16x0e + 8x1o + 4x2e"  # node features after each gate; must contain 1o
    layers: int = 2  # convolution + gate blocks
    lmax: int = 2  # spherical harmonics of the edges
    r_max: float = 3.5  # graph cutoff and radial basis range
    n_basis: int = 8


def build_gated_tp(cfg: GatedTPConfig, task):
    """TP convolutions with gates and a linear vector head; E(3)."""
    inputs, sh = NodeInputs(task.inputs), SphericalHarmonicsEdgeAttrs(cfg.lmax)
    layers = [inputs, GraphConstruction("radius", r=cfg.r_max), sh, RadialEmbedding(cfg.n_basis, cfg.r_max)]
    irreps = inputs.irreps_out[K.NODE_FEATURES]
    for _ in range(cfg.layers):
        gate = Gate(cfg.hidden)
        layers += [
            TensorProductConv(irreps, gate.irreps_in[K.NODE_FEATURES], sh.sh_irreps, cfg.n_basis, normalization="mean"),
            gate,
        ]
        irreps = gate.irreps_out[K.NODE_FEATURES]
    layers.append(VectorHead(irreps, K.DISPLACEMENT))
    return SequentialModel(*layers, irreps_in=task.inputs, outputs=[K.DISPLACEMENT], symmetry="E(3)")


# Registering a name twice is an error (it protects the built-in models from being shadowed);
# removing an earlier registration first makes this cell safe to re-run in Jupyter.
if NAME in irrepnet.list_models():
    unregister_model(NAME)
register_model(NAME, config=GatedTPConfig)(build_gated_tp)  # the same as @register_model(...) on the def

print("registered models:", irrepnet.list_models())
model = irrepnet.build_model(NAME, task.spec)
print(model.irreps_in, "->", model.irreps_out, "| symmetry", model.symmetry.value)
print(
    f"{sum(p.numel() for p in model.parameters()):,} parameters in {len(model.chain.layers)} layers:",
    [type(m).__name__ for m in model.chain.layers],
)

# %% [markdown]
# `model.irreps_in` lists only what the layers actually read (`pos` and `vel_history`), not
# everything the task offers. The same builder, unchanged, builds a model for the charged
# N-body task of tutorial 4, whose inputs are a velocity and a charge (`0e`):

# %%
nbody_model = irrepnet.build_model(NAME, task_spec("nbody"))
print("nbody:", nbody_model.irreps_in, "| first features", nbody_model.chain.layers[0].irreps_out[K.NODE_FEATURES])
del nbody_model

# %% [markdown]
# ## 4. Audit
#
# The audit reads the declared irreps and checks the claimed symmetry, E(3) here:
# rotations, reflections, translations, and permutations of the nodes. In float64 the
# errors must be at round-off ($10^{-9}$ relative tolerance); in float32 the tolerance is
# $10^{-4}$. `audit_all` runs both (on a copy of the model: the model itself stays float32).

# %%
batch = task.test.batch(range(4))
for report in audit_all(model, batch, trials=2):
    print(report, "\n")

# %% [markdown]
# ## 5. Training
#
# `train_registered(name, task, TrainConfig(...), model_config)` builds the model from the
# registry (seeded with `TrainConfig.seed`) and trains it with the loop every model uses:
# Adam with warm-up and cosine decay, targets and vector inputs divided by their training RMS
# (a scalar factor, so equivariance is kept), the last 10% of the training frames held out
# for validation, the best epoch kept. The returned `TrainResult.model` works in physical
# units. The budget is tiny: a few seconds of CPU.

# %%
train_cfg = TrainConfig(
    epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH, batch_size=32, lr=3e-3, warmup_steps=20, progress=False
)
start = time.perf_counter()
result = train_registered(NAME, task, train_cfg, {"layers": 2})  # model config overrides by name
print(
    f"{result.steps} steps in {time.perf_counter() - start:.1f} s, median {result.train_step_ms:.1f} ms per step; "
    f"best epoch {result.best_epoch}"
)
for h in result.history:
    print(f"  epoch {h['epoch']}: train loss {h['train_loss']:.3f} (normalised units), valid MSE {h['valid_mse']:.2e}")

# %% [markdown]
# On the test split, against the physical baselines of tutorial 2 (zero displacement,
# constant velocity, constant acceleration):

# %%
pred, true = M.predict(result.model, task.test)
acc = M.accuracy(pred, true)
baselines = evaluate_baselines(task.test)
print(f"{NAME}: test MSE {acc['test_mse']:.2e}, R2 {acc['r2']:.3f}")
for name, mse in baselines.items():
    print(f"  {acc['test_mse'] / mse:10.3g} x the {name} baseline ({mse:.2e})")
print("\nthe trained model still passes the audit:", all(r.passed for r in audit_all(result.model, batch, trials=1)))

fig, ax = plt.subplots(figsize=(4.5, 2.6))
ax.semilogy([h["epoch"] for h in result.history], [h["valid_mse"] for h in result.history], "o-", label=NAME)
for (name, mse), style in zip(baselines.items(), ["--", ":", "-."]):
    ax.axhline(mse, color="grey", ls=style, lw=1, label=name)
ax.set_xlabel("epoch"), ax.set_ylabel("MSE per coordinate")
ax.xaxis.set_major_locator(MaxNLocator(integer=True))
ax.set_title("validation MSE; grey: baselines' test MSE", fontsize=8)
ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
plt.show()

# %% [markdown]
# Whatever the number, judge it against the baselines: with the velocity history among the
# inputs, a network trained for a few seconds is not expected to beat constant acceleration,
# and on this tiny budget a tensor-product model may not even reach constant velocity
# (tutorial 2 discusses why). The point here is that the new model trains, stays equivariant,
# and is measured like every other model.
#
# ## 6. Benchmark against the zoo
#
# Because the model is registered, the benchmark harness can run it by name next to the
# built-in models. `adhoc_suite(task, models, history=...)` is the suite behind
# `irrepnet bench --task twelve_body --models a,b,c`; here with the same training recipe as
# above, against `tfn` (the zoo's tensor field network, the same family with three blocks
# and a bigger hidden layer) and `egnn-vel` (the EGNN family). The harness trains
# `gated-tp` again, in this process (the registration lives in this kernel only), and all
# three get the same
# evaluation: test metrics, rollouts, the audit of the trained model in both dtypes, timings.

# %%
suite = adhoc_suite(
    "twelve_body", [NAME, "tfn", "egnn-vel"], history=2, train={"batch_size": 32, "lr": 3e-3, "warmup_steps": 20}
)
out = Path(tempfile.mkdtemp(prefix="irrepnet-tutorial-03-"))  # a fresh folder: the harness never overwrites
start = time.perf_counter()
results = run_suite(
    suite, out, data=DATA, extra_train={"epochs": EPOCHS, "steps_per_epoch": STEPS_PER_EPOCH, "progress": False}
)
print(f"\nharness finished in {time.perf_counter() - start:.0f} s")

# %%
report = (out / "report.md").read_text()
section = report.split("![")[0].split("\nPearson")[0]  # up to the plots and the correlation table
section = section[section.find("\n## ") + 1 :] if "\n## " in section else section  # from the group's heading on
display(Markdown(section.replace("## ", "#### ")))

# %% [markdown]
# The harness's run of `gated-tp` used the same seed, data and training options as section 5,
# so its test MSE should match the one computed there (up to the last digits: CPU kernels are
# not always bitwise reproducible):

# %%
row = next(r for r in results["groups"][0]["rows"] if r["name"] == NAME)
print(f"section 5: {acc['test_mse']:.4e}   harness: {row['metrics']['test_mse']:.4e}")

# %% [markdown]
# And the rollout plot: positions predicted by feeding each model's displacement back as
# its next input, error after $k$ steps.

# %%
display(Image(filename=str(out / "plots" / "rollout-history-2.png")))

# %% [markdown]
# How to read the comparison: `gated-tp` and `tfn` are the same family; differences between
# them at this budget say more about size, depth and how the weights are stored (a smaller
# network takes fewer steps to reach a reasonable fit, and each step is cheaper; `tfn`
# stores its weights as `torch.nn.Linear` does, which Adam moves several times faster than
# e3nn's storage: `irrepnet.nn.parametrization.use_linear_parametrization(model)` does the
# same for `gated-tp`) than about the design. `egnn-vel` has
# the velocity built into its coordinate update and is usually far ahead on a short budget
# (tutorial 2). A fair architecture study would give each model the same wall-clock time or
# train each to convergence, and repeat over seeds (`--seed`): the harness records everything
# needed (`results.json`, the `log.jsonl` of every run, the checkpoints).
#
# ## Where next
#
# - Keep the config and builder in a module of your own: importing it registers the model,
#   and from then on `train_registered`, `run_suite` and `irrepnet.train.load_trained` (which
#   rebuilds a model from a checkpoint by its registered name) work with it in that process.
# - Add the module to `irrepnet/models/` (and import it in `irrepnet/models/__init__.py`) to
#   make the model part of the zoo: the command line (`irrepnet train`, `bench`, `audit`) only
#   knows the models registered when `irrepnet` is imported, and the shared conformance suite
#   (`tests/test_conformance.py`: output irreps, audit in both dtypes, batching, gradients,
#   `state_dict` round trip) then runs it with no new test code. `tests/test_compose_model.py`
#   puts a one-convolution model much like this one through that suite, composed in under 30
#   lines.
# - Swap layers: `RadialEmbedding(..., basis="gaussian")`, `TensorProductConv(...,
#   normalization="sqrt_avg_neighbors", avg_num_neighbors=...)`, `GraphConstruction("knn", k=...)`,
#   or irrepnet's `EquivariantAttention` and `EGNNLayer` (in `irrepnet.nn`); the composition
#   check tells you at once when the irreps no longer fit.
# - Train it longer: `IRREPNET_FULL=1` doubles the budget here; once the model is in the zoo,
#   the command-line equivalents are `irrepnet train --model gated-tp --history 2 --out
#   runs/gated-tp`, `irrepnet bench --task twelve_body --models gated-tp,tfn,egnn-vel --history 2`
#   and `irrepnet audit --checkpoint runs/gated-tp/best.pt`.
#
# Tidy up: remove the registration (only this kernel knew it) and the results folder.

# %%
unregister_model(NAME)
shutil.rmtree(out)
print(NAME in irrepnet.list_models())
