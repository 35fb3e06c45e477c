"""Classifier-free guidance on a class-conditional Fashion-MNIST pipeline: accuracy against FID.

For each guidance scale, draws 100 images of each class with the `sample` tool (DPM-Solver++,
20 steps), then scores them with the Fashion-MNIST CNN of ../shared/tools (fmnist_cnn.pt, 90%
accuracy on the real test images): the share classified as the class that was asked for, and the
Frechet distance of its features to those of the 10,000 test images (fmnist_fid.py's FID).

Usage (Debian's python3-torch and python3-numpy):
  /usr/bin/python3 benchmarks/quality/class_guidance.py --pipeline outputs/ddpm-fashion-mnist-classes \
      --sample build/examples/sample --tools ../shared/tools [--scales 1 2 3 5] [--per_class 100]
Prints a Markdown table (docs/recipes.md keeps the measured one) and writes the samples under
--output_dir (guidance_<w>/: grid.png with one row per class, samples.npy, labels.txt).
"""
import argparse, json, os, subprocess, sys, time

import numpy as np
import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pipeline", required=True, help="a class-conditional pipeline folder")
    ap.add_argument("--sample", required=True, help="the sample tool (build/examples/sample)")
    ap.add_argument("--tools", required=True, help="the folder of fmnist_fid.py and fmnist_cnn.pt")
    ap.add_argument("--scales", type=float, nargs="+", default=[1, 2, 3, 5])
    ap.add_argument("--per_class", type=int, default=100)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--output_dir", default="class_guidance")
    a = ap.parse_args()

    sys.path.insert(0, os.path.abspath(a.tools))
    from fmnist_classifier import Net, load
    from fmnist_fid import feats, frechet
    torch.set_num_threads(2)
    net = Net()
    net.load_state_dict(torch.load(os.path.join(a.tools, "fmnist_cnn.pt")))
    net.eval()
    test_images, _ = load("test")
    test_features, _ = feats(net, test_images)
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
             "Ankle boot"]

    rows = []
    for w in a.scales:
        out = os.path.join(a.output_dir, f"guidance_{w:g}")
        started = time.time()
        subprocess.run([a.sample, "--pipeline", a.pipeline, "--class_label", "all", "--batch_size", str(a.per_class),
                        "--guidance_scale", f"{w:g}", "--scheduler", "dpmpp_2m", "--num_inference_steps",
                        str(a.steps), "--output_dir", out], check=True, stdout=subprocess.DEVNULL)
        seconds = time.time() - started
        x = torch.tensor(np.load(os.path.join(out, "samples.npy")).astype(np.float32)).clamp(-1, 1)
        asked = torch.tensor([int(line) for line in open(os.path.join(out, "labels.txt"))])
        f, logits = feats(net, x)
        predicted = logits.argmax(1)
        per_class = [float((predicted[asked == k] == k).float().mean()) for k in range(10)]
        rows.append({"guidance": w, "accuracy": float((predicted == asked).float().mean()),
                     "fid": frechet(f, test_features), "confidence": float(F.softmax(logits, 1).max(1).values.mean()),
                     "per_class": per_class, "seconds": seconds})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    print("| guidance scale | accuracy on the asked class | FID (1,000 images) | mean confidence | sampling time |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['guidance']:g} | {100 * r['accuracy']:.1f}% | {r['fid']:.2f} | {r['confidence']:.3f} "
              f"| {r['seconds']:.0f} s |")
    print("\n| class | " + " | ".join(f"w = {r['guidance']:g}" for r in rows) + " |")
    print("| --- | " + " | ".join("---:" for _ in rows) + " |")
    for k in range(10):
        print(f"| {k} {names[k]} | " + " | ".join(f"{100 * r['per_class'][k]:.0f}%" for r in rows) + " |")


if __name__ == "__main__":
    main()
