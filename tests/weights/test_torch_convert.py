"""Parity of the torchvision converters: torchvision models with random weights, converted,
give the same logits as torchvision on real photos (relative difference <= 1e-4).

Small inputs keep this cheap: 64x64 photos. torchvision's VGG pools adaptively to 7x7 before
its classifier; at 64 px our VGG flattens a 2x2 map, so the reference VGG gets an identity
pool and a first dense layer of 512*2*2 inputs (the NCHW -> NHWC row permutation is still
exercised; at 224 px the same code permutes 7x7x512 rows). AlexNet "one weird trick" keeps its
adaptive 6x6 pooling (ours pools the same way), so its reference is torchvision's model as is.

Every converter layout runs on all three backends through one model; the variants that reuse
a layout (vgg11_bn on "vgg", resnet50_v1_5 on "resnet") run on tensorflow only.
"""

import numpy as np
import pytest

from kerascv_suite import models
from kerascv_suite.models.weights import convert_checkpoint
from kerascv_suite.weights import WeightsError, convert_state_dict, set_bn_epsilon
from tests.weights.helpers import photos, randomize, torch_preprocess

SIZE = 64
TOLERANCE = 1e-4


# Our registry name -> torchvision builder and its arguments, where they differ.
TORCHVISION_MODELS = {
    "vgg11_bn": ("vgg11_bn", {}),
    "alexnet_owt": ("alexnet", {}),
    # As torchvision builds it for its weights: input transform on, the (untrained, dropped
    # in eval) auxiliary heads in the state dict; the converter leaves those out.
    "googlenet_tv": ("googlenet", {"transform_input": True, "aux_logits": True,
                                   "init_weights": False}),
}
# Cheaper stand-ins, the same on both sides: resnet50_v1_5 with one bottleneck per stage
# (every stage still strides on its 3x3: the v1.5 path), alexnet_owt pooled adaptively to 2x2
# instead of 6x6 (fc6 of 1,024 inputs instead of 9,216; the 1x1 conv5 map of a 64 px photo is
# still repeated by the pooling and the flatten's rows still permuted through the dropout).
SMALLER = {"resnet50_v1_5": {"stack_sizes": (1, 1, 1, 1)},
           "alexnet_owt": {"adaptive_pool": (2, 2)}}


def reference(torchvision, name):
    import torch

    if name == "resnet50_v1_5":
        resnet = torchvision.models.resnet
        return randomize(resnet.ResNet(resnet.Bottleneck, [1, 1, 1, 1]), seed=len(name))
    factory_name, kwargs = TORCHVISION_MODELS.get(name, (name, {}))
    module = getattr(torchvision.models, factory_name)(weights=None, **kwargs)
    if name.startswith("vgg"):
        module.avgpool = torch.nn.Identity()
        module.classifier[0] = torch.nn.Linear(512 * (SIZE // 32) ** 2, 4096)
    if name == "alexnet_owt":
        module.avgpool = torch.nn.AdaptiveAvgPool2d((2, 2))
        module.classifier[1] = torch.nn.Linear(256 * 2 * 2, 4096)
    return randomize(module, seed=len(name))


def relative_difference(ours, theirs):
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


@pytest.mark.backend
@pytest.mark.parametrize("name", ["resnet18", "squeezenet1_0", "squeezenet1_1", "vgg11",
                                  "alexnet_owt", "googlenet_tv"])
def test_converted_model_gives_torchvision_logits(torchvision, tmp_path, name):
    check_parity(torchvision, tmp_path, name)


@pytest.mark.parametrize("name", ["vgg11_bn", "resnet50_v1_5"])
def test_variants_on_a_shared_layout_give_torchvision_logits(torchvision, tmp_path, name):
    module, theirs = check_parity(torchvision, tmp_path, name)
    if name == "resnet50_v1_5":
        # The same tensors fit keras.applications' layout (stride on the first 1x1) shape for
        # shape; only the v1.5 stride placement gives torchvision's logits.
        state = {k: v.numpy() for k, v in module.state_dict().items()}
        v1 = models.build("resnet50", input_shape=(SIZE, SIZE, 3), preprocessing="torch",
                          classifier_activation=None, **SMALLER[name])
        convert_state_dict(v1, state, "resnet")
        set_bn_epsilon(v1, 1e-5)
        assert relative_difference(np.asarray(v1.predict(photos(SIZE), verbose=0)), theirs) > 0.01


def check_parity(torchvision, tmp_path, name):
    import torch

    module = reference(torchvision, name)
    checkpoint = tmp_path / f"{name}.pth"
    torch.save(module.state_dict(), checkpoint)
    images = photos(SIZE)
    with torch.no_grad():
        theirs = module(torch_preprocess(images)).numpy()

    model = convert_checkpoint(models.get_spec(name), checkpoint, input_shape=(SIZE, SIZE, 3),
                               classifier_activation=None, **SMALLER.get(name, {}))
    ours = np.asarray(model.predict(images, verbose=0))
    assert ours.shape == theirs.shape == (3, 1000)
    assert relative_difference(ours, theirs) <= TOLERANCE
    # Real photos, random weights: the three images still get distinct logits.
    assert np.max(np.abs(theirs[0] - theirs[1])) > 100 * TOLERANCE * np.max(np.abs(theirs))
    if name == "vgg11":
        # The first dense layer's rows follow NHWC flattening: plain transposes (NCHW rows)
        # mix channels and positions and change the logits.
        fc1 = model.get_layer("fc1")
        fc1.set_weights([module.classifier[0].weight.detach().numpy().T,
                         fc1.get_weights()[1]])
        assert relative_difference(np.asarray(model.predict(images, verbose=0)), theirs) > 0.01
    return module, theirs


def test_a_checkpoint_of_another_architecture_is_refused(torchvision, tmp_path):
    state = {k: v.numpy() for k, v in reference(torchvision, "resnet18").state_dict().items()}
    model = models.build("resnet34", input_shape=(SIZE, SIZE, 3), preprocessing="torch")
    with pytest.raises(WeightsError, match="got no tensor"):
        convert_state_dict(model, state, "resnet")
    squeeze = models.build("squeezenet1_1", input_shape=(SIZE, SIZE, 3))
    with pytest.raises(WeightsError, match="no layer 'conv1_conv'"):
        convert_state_dict(squeeze, state, "resnet")
