"""The PyTorch side of `benches/peers.rs`: the same workloads as a PyTorch hand loop and, when
installed, as a PyTorch Lightning module. Run by the Rust bench, which writes the data; prints
`workload<TAB>runner<TAB>steps per second` (median of --reps runs after one warm-up run).

Arguments: --reps=N, then per workload
`name:inputs:hidden(comma-separated):batch:epochs:train_items:valid_items:train.bin:valid.bin`,
where a .bin file holds the items' little-endian f32 features, then their u8 labels.
"""

import math
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

torch.set_num_threads(2)
LR = 1e-3
SEED = 1


def load(path, items, inputs):
    raw = np.fromfile(path, dtype=np.uint8)
    features = raw[: items * inputs * 4].view("<f4").reshape(items, inputs)
    labels = raw[items * inputs * 4 :].astype(np.int64)
    return torch.from_numpy(features.copy()), torch.from_numpy(labels)


def mlp(inputs, hidden):
    torch.manual_seed(SEED)
    layers, width = [], inputs
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def hand_loop(w):
    model = mlp(w["inputs"], w["hidden"])
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    x, y = w["train"]
    generator = torch.Generator().manual_seed(SEED)
    steps = 0
    for _ in range(w["epochs"]):
        model.train()
        order = torch.randperm(len(y), generator=generator)
        loss_sum = torch.zeros(())
        correct = torch.zeros((), dtype=torch.int64)
        for start in range(0, len(y), w["batch"]):
            index = order[start : start + w["batch"]]
            xb, yb = x[index], y[index]
            logits = model(xb)
            loss = loss_fn(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                loss_sum += loss.detach() * len(yb)
                correct += (logits.argmax(1) == yb).sum()
            steps += 1
        _ = (loss_sum.item(), correct.item())
        if w["valid"] is not None:
            model.eval()
            vx, vy = w["valid"]
            with torch.no_grad():
                total = torch.zeros(())
                for start in range(0, len(vy), w["batch"]):
                    xb, yb = vx[start : start + w["batch"]], vy[start : start + w["batch"]]
                    total += loss_fn(model(xb), yb) * len(yb)
                _ = total.item()
    return steps


def lightning_loop(w):
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, TensorDataset

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = mlp(w["inputs"], w["hidden"])
            self.loss_fn = nn.CrossEntropyLoss()

        def training_step(self, batch, _):
            xb, yb = batch
            logits = self.net(xb)
            loss = self.loss_fn(logits, yb)
            self.log("loss", loss, on_step=False, on_epoch=True)
            self.log("accuracy", (logits.argmax(1) == yb).float().mean(), on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch, _):
            xb, yb = batch
            self.log("val_loss", self.loss_fn(self.net(xb), yb))

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=LR)

    x, y = w["train"]
    train = DataLoader(TensorDataset(x, y), batch_size=w["batch"], shuffle=True,
                       generator=torch.Generator().manual_seed(SEED))
    valid = None
    if w["valid"] is not None:
        valid = DataLoader(TensorDataset(*w["valid"]), batch_size=w["batch"])
    trainer = pl.Trainer(max_epochs=w["epochs"], accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(Module(), train, valid)
    return trainer.global_step


def median_rate(run, w, reps):
    run(w)
    rates = []
    for _ in range(reps):
        started = time.perf_counter()
        steps = run(w)
        rates.append(steps / (time.perf_counter() - started))
    return statistics.median(rates)


def main():
    reps = 3
    workloads = []
    for arg in sys.argv[1:]:
        if arg.startswith("--reps="):
            reps = int(arg.split("=", 1)[1])
            continue
        name, inputs, hidden, batch, epochs, n_train, n_valid, train, valid = arg.split(":")
        inputs, n_train, n_valid = int(inputs), int(n_train), int(n_valid)
        workloads.append({
            "name": name,
            "inputs": inputs,
            "hidden": [int(h) for h in hidden.split(",")],
            "batch": int(batch),
            "epochs": int(epochs),
            "train": load(train, n_train, inputs),
            "valid": load(valid, n_valid, inputs) if n_valid else None,
        })
    try:
        import lightning.pytorch  # noqa: F401
        runners = [("PyTorch hand loop", hand_loop), ("PyTorch Lightning", lightning_loop)]
    except ImportError:
        print("lightning is not installed: its column is left out", file=sys.stderr)
        runners = [("PyTorch hand loop", hand_loop)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr)
    for w in workloads:
        for name, run in runners:
            rate = median_rate(run, w, reps)
            if math.isfinite(rate):
                print(f"{w['name']}\t{name}\t{rate:.3f}", flush=True)


if __name__ == "__main__":
    main()
