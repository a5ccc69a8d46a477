"""Classification families; importing this package registers every variant."""

from kerascv_suite.models.classification import (  # noqa: F401
    alexnet,
    ensemble,
    googlenet,
    inception_v2,
    lenet,
    nin,
    resnet,
    squeezenet,
    vgg,
)
