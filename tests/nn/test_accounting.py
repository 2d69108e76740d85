from catneuron import config as C
from catneuron.cli.info import describe
from catneuron.nn.accounting import count


def test_paper_counts_match_hand_computation():
    # 200x200x3 -> filters 18x18, stride 1: (200-18+1)^2 = 183^2 locations, 8 maps, 18*18*3 weights each;
    # pool 5, stride 1: 179^2; stage 2: (179-17)^2 = 162^2 locations, 18*18*8 weights; pool: 158^2;
    # stage 3: 141^2 locations, pool 137^2.
    w1 = [183 ** 2 * 8 * 18 * 18 * 3, 162 ** 2 * 8 * 18 * 18 * 8, 141 ** 2 * 8 * 18 * 18 * 8]
    assert w1 == [260_410_464, 544_195_584, 412_252_416]
    c = count(C.preset("paper").model)          # built on the meta device
    assert [s.encoder_params for s in c.stages] == w1
    assert [s.decoder_params for s in c.stages] == w1
    assert c.connections == sum(w1) == 1_216_858_464
    assert c.parameters == 2 * sum(w1)
    mem = c.memory(100)
    assert mem["weights"] == mem["optimizer_state"] == 4 * 2 * sum(w1)
    assert c.memory(100, "adam")["optimizer_state"] == 2 * mem["weights"]
    # Autograd keeps at least every sublayer output and reconstruction; pooling and LCN keep a few
    # intermediates of the same sizes besides.
    per_image = (8 * 183 ** 2 + 2 * 8 * 179 ** 2 + 3 * 200 ** 2) + (8 * 162 ** 2 + 2 * 8 * 158 ** 2 + 8 * 179 ** 2) \
        + (8 * 141 ** 2 + 2 * 8 * 137 ** 2 + 8 * 158 ** 2)
    assert 100 * 4 * per_image < mem["activations"] < 4 * 100 * 4 * per_image
    assert "1,216,858,464" in describe(C.preset("paper").model)


def test_saved_activations_counted_on_meta_equal_those_of_a_real_step():
    import torch

    from catneuron.nn.accounting import saved_for_backward
    from catneuron.nn.autoencoder import DeepSparseAutoencoder
    cfg = C.preset("tiny").model
    model = DeepSparseAutoencoder(cfg)
    storages: dict[int, torch.Tensor] = {}       # holding them keeps freed addresses from being reused

    def pack(t):
        if not (t.is_leaf and t.requires_grad):
            storages[t.untyped_storage().data_ptr()] = t
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.objective(torch.randn(6, 3, 20, 20))
    # Counted per saved tensor on meta (a storage saved through two views counts twice), per
    # storage here: equal within a few per cent, and the estimate errs on the large side.
    real = sum(t.untyped_storage().nbytes() for t in storages.values())
    assert real <= saved_for_backward(cfg, 6) <= 1.05 * real
