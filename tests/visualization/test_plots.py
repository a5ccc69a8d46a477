import numpy as np

from kerascv_suite import visualization


def _read(path):
    import matplotlib.image

    return matplotlib.image.imread(path)


def test_plots_write_images(tmp_path):
    history = [{"epoch": 1, "loss": 1.0, "val_loss": 1.2, "accuracy": 0.4, "lr": 0.1},
               {"epoch": 2, "loss": 0.5, "val_loss": 0.8, "accuracy": 0.7, "lr": 0.1}]
    visualization.plot_curves(history, tmp_path / "curves.png")
    visualization.plot_confusion_matrix(np.array([[3, 1], [0, 2]]), ["a", "b"],
                                        tmp_path / "confusion.png")
    images = np.zeros((3, 8, 8, 1), np.uint8)
    visualization.plot_predictions(images, [0, 1, 1], [0, 0, 1], ["a", "b"],
                                   tmp_path / "predictions.png")
    visualization.plot_val_ap([{"epoch": 1, "val_ap": 0.2, "val_ap50": 0.4, "val_ap75": ""},
                               {"epoch": 2, "val_ap": None}], tmp_path / "val_ap.png")
    curves = _read(tmp_path / "curves.png")
    # Two metric panels (loss, accuracy; lr left out) at 4.5 x 3.5 inches, 100 dpi each.
    assert curves.shape[:2] == (350, 900)
    for name in ("confusion", "predictions", "val_ap"):
        assert _read(tmp_path / f"{name}.png").ndim == 3


def test_pyplot_is_file_only():
    import matplotlib

    visualization.pyplot()
    assert matplotlib.get_backend().lower() == "agg"
