"""Recipes and TrainConfig: every setting declared once, checked once, recipes as values."""

import dataclasses

import numpy as np
import pytest

from mnist_cnn import augment, fitting, models, recipes
from mnist_cnn.errors import MnistCnnError


def test_the_classic_recipe_is_trainconfigs_defaults():
    cfg = recipes.make_config("classic")
    assert cfg == recipes.TrainConfig(recipe="classic")
    assert (cfg.architecture, cfg.epochs, cfg.lr, cfg.shift) == ("classic", 8, 3e-3, 2.0)


@pytest.mark.parametrize("name", sorted(recipes.RECIPES))
def test_every_recipe_is_a_valid_config_of_a_known_network(name):
    needed = {setting: "given" for setting in recipes.NEEDS.get(name, ())}  # e.g. a model
    cfg = recipes.make_config(name, **needed)
    assert cfg.recipe == name and cfg.architecture in models.ARCHITECTURES
    assert set(recipes.RECIPES[name]) <= {f.name for f in dataclasses.fields(cfg)}


def test_best_and_best_deep_feed_their_nets_the_same_batches():
    """`best` differs from `best-deep` in the network only: same seed, same training images."""
    x = np.random.default_rng(0).uniform(0, 255, (64, 28, 28, 1)).astype("float32")
    seen = []
    for name in ("best", "best-deep"):
        cfg = recipes.make_config(name)
        idx, _ = fitting.Batches(np.arange(64), np.arange(64), 32, seed=1)[0]
        seen.append(augment.apply(x[idx], augment.Augment.from_config(cfg), seed=1))
    assert np.array_equal(seen[0], seen[1])
    assert recipes.make_config("best").architecture != recipes.make_config("best-deep").architecture


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"optimizer": "lion"}, "optimizer must be one of"),
        ({"precision": "float8"}, "precision must be one of"),
        ({"strategy": "ring"}, "strategy must be one of"),
        ({"zoom": 1.0}, "zoom must be below 1"),
        ({"synthetic": 0.95}, "synthetic must be below 0.9"),
        ({"lr": "fast"}, "lr must be float"),
        ({"train_limit": 0}, "train_limit must be at least 1"),
    ],
)
def test_bad_values_are_refused_by_the_config_itself(overrides, message):
    with pytest.raises(MnistCnnError, match=message):
        recipes.make_config("classic", **overrides)


def test_ints_are_taken_where_floats_are_asked_and_none_where_allowed():
    cfg = recipes.make_config("classic", shift=2, lr=1, train_limit=None)
    assert cfg.shift == 2 and cfg.train_limit is None


def test_old_names_get_one_clear_message():
    with pytest.raises(MnistCnnError, match="now called 'classic'"):
        recipes.make_config("seed")
    with pytest.raises(MnistCnnError, match="now called 'classic'"):
        models.build("seed")


def test_a_config_written_with_model_for_the_recipe_still_loads():
    # runs before the setting was called "recipe" saved it as "model"
    assert recipes.config_from({"model": "fast", "epochs": 2}).recipe == "fast"
    with pytest.raises(MnistCnnError, match="replace its model 'seed' by 'classic'"):
        recipes.config_from({"model": "seed"})
    with pytest.raises(MnistCnnError, match="as `recipe`"):
        recipes.make_config(model="fast")


@pytest.mark.parametrize("name", recipes.AUGMENT)
def test_every_augment_setting_is_something_the_augmentation_does(name):
    # Augment is made of TrainConfig's settings marked augment=True: one it ignored would be
    # a flag that does nothing
    aug = augment.Augment(**{name: 1.0})
    assert aug and (aug.warp or aug.appearance)
