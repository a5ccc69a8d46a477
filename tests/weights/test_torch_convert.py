"""Parity of the torchvision converters: torchvision models with random weights, converted,
give the same logits as torchvision on real photos (relative difference <= 1e-4).

Small inputs keep this cheap: 64x64 photos. torchvision's VGG pools adaptively to 7x7 before
its classifier; at 64 px our VGG flattens a 2x2 map, so the reference VGG gets an identity
pool and a first dense layer of 512*2*2 inputs (the NCHW -> NHWC row permutation is still
exercised; at 224 px the same code permutes 7x7x512 rows).
"""

import numpy as np
import pytest

from kerascv_suite import models
from kerascv_suite.models.weights import convert_checkpoint
from kerascv_suite.weights import WeightsError, convert_state_dict
from tests.weights.helpers import photos, randomize, torch_preprocess

SIZE = 64
TOLERANCE = 1e-4


def reference(torchvision, name):
    import torch

    factory = getattr(torchvision.models, name)
    module = factory(weights=None)
    if name.startswith("vgg"):
        module.avgpool = torch.nn.Identity()
        module.classifier[0] = torch.nn.Linear(512 * (SIZE // 32) ** 2, 4096)
    return randomize(module, seed=len(name))


def relative_difference(ours, theirs):
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


@pytest.mark.backend
@pytest.mark.parametrize("name", ["resnet18", "squeezenet1_0", "squeezenet1_1", "vgg11"])
def test_converted_model_gives_torchvision_logits(torchvision, tmp_path, name):
    import torch

    module = reference(torchvision, name)
    checkpoint = tmp_path / f"{name}.pth"
    torch.save(module.state_dict(), checkpoint)
    images = photos(SIZE)
    with torch.no_grad():
        theirs = module(torch_preprocess(images)).numpy()

    model = convert_checkpoint(models.get_spec(name), checkpoint,
                               input_shape=(SIZE, SIZE, 3), classifier_activation=None)
    ours = np.asarray(model.predict(images, verbose=0))
    assert ours.shape == theirs.shape == (3, 1000)
    assert relative_difference(ours, theirs) <= TOLERANCE
    # Real photos, random weights: the three images still get distinct logits.
    assert np.max(np.abs(theirs[0] - theirs[1])) > 100 * TOLERANCE * np.max(np.abs(theirs))
    if name.startswith("vgg"):
        # The first dense layer's rows follow NHWC flattening: plain transposes (NCHW rows)
        # mix channels and positions and change the logits.
        fc1 = model.get_layer("fc1")
        fc1.set_weights([module.classifier[0].weight.detach().numpy().T,
                         fc1.get_weights()[1]])
        assert relative_difference(np.asarray(model.predict(images, verbose=0)), theirs) > 0.01


def test_a_checkpoint_of_another_architecture_is_refused(torchvision, tmp_path):
    state = {k: v.numpy() for k, v in reference(torchvision, "resnet18").state_dict().items()}
    model = models.build("resnet34", input_shape=(SIZE, SIZE, 3), preprocessing="torch")
    with pytest.raises(WeightsError, match="got no tensor"):
        convert_state_dict(model, state, "resnet")
    squeeze = models.build("squeezenet1_1", input_shape=(SIZE, SIZE, 3))
    with pytest.raises(WeightsError, match="no layer 'conv1_conv'"):
        convert_state_dict(squeeze, state, "resnet")
