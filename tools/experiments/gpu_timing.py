"""The experiments' one GPU measurement: check a kernel against float64, then time it per block size."""


def best_time(k, w, layer, batch: int, blocks=(64, 128, 256), rotation: int = 4,
              pad_bytes: int = 0):
    """(median us, block, largest relative error) of the fastest block that launches.

    Each block's output is compared with a float64 convolution first (outputs
    poisoned with NaN); a block that cannot launch (registers, shared memory)
    is skipped. Inputs rotate over ``rotation`` sets so that they leave L2;
    with ``pad_bytes`` each input is the start of a buffer that long past its
    end (for kernels that touch memory past the tensor, e.g. prefetches).
    """
    import torch

    from irprune.bench.timing import measure

    numel = batch * layer.C * layer.H * layer.W
    extra = -(-pad_bytes // 4)
    xs = [torch.randn(numel + extra, device="cuda")[:numel].view(batch, layer.C, layer.H, layer.W)
          for _ in range(rotation)]
    ref = torch.nn.functional.conv2d(xs[0].double(), torch.from_numpy(w).double().cuda(),
                                     stride=layer.stride, padding=layer.padding)
    y = torch.empty(ref.shape, device="cuda")
    best = None
    for blk in blocks:
        k.block = blk
        y.fill_(float("nan"))
        try:
            k(xs[0], out=y)
        except Exception as exc:  # a block that does not fit
            print("  block", blk, "failed:", str(exc)[:100])
            continue
        torch.cuda.synchronize()
        err = float((y.double() - ref).abs().max() / ref.abs().max())
        t = measure(lambda i: k(xs[i], out=y), rotation=rotation, target_ms=10, repeats=5).median_us
        if best is None or t < best[0]:
            best = (t, blk, err)
    return best
