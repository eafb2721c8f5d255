import pytest

from ecr_ray.config import Config, ConfigError, load_config, parse_overrides


@pytest.mark.parametrize("recipe", ["demo", "cpu", "paper"])
def test_recipes_load_and_validate(recipe):
    cfg = load_config(recipe)
    assert isinstance(cfg, Config)
    assert cfg.recipe == recipe


def test_paper_recipe_follows_section_5_4():
    cfg = load_config("paper")
    assert cfg.recommender.emotion_dim == 48
    assert cfg.recommender.feedback_weights == {"like": 2.0, "dislike": 1.0, "not_said": 0.5}
    assert (cfg.generator.num_triples, cfg.generator.num_review_entities) == (2, 4)
    assert cfg.generator.lr == 5e-5 and cfg.generator.batch_size == 16
    assert cfg.recommender.batch_size == 128
    assert cfg.generator.deepspeed["zero_optimization"]["stage"] == 3


def test_cli_overrides_are_typed():
    ov = parse_overrides(
        [
            "--recommender.epochs",
            "3",
            "--recommender.lr=0.01",
            "--data.link_entities",
            "false",
            "--generator.lora_targets",
            "[q_proj, k_proj]",
        ]
    )
    cfg = load_config("demo", ov)
    assert cfg.recommender.epochs == 3 and cfg.recommender.lr == 0.01
    assert cfg.data.link_entities is False
    assert cfg.generator.lora_targets == ["q_proj", "k_proj"]


@pytest.mark.parametrize(
    "override, message",
    [
        ({"recommender.variant": "nope"}, "recommender.variant"),
        ({"recommender.epochs": "many"}, "recommender.epochs: expected an integer"),
        ({"data.bogus": 1}, "unknown field(s) ['bogus']"),
        ({"recommender.feedback_weights": {"like": 1.0}}, "missing ['dislike', 'not_said']"),
        ({"data.valid_fraction": 1.5}, "data.valid_fraction"),
    ],
)
def test_bad_values_name_the_field(override, message):
    with pytest.raises(
        ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")
    ):
        load_config("demo", override)


def test_precedence_cli_over_env_over_recipe(monkeypatch):
    monkeypatch.setenv("ECR_DATA_DIR", "/from/env")
    assert load_config("cpu").data.data_dir == "/from/env"
    assert load_config("cpu", {"data.data_dir": "/from/cli"}).data.data_dir == "/from/cli"


def test_unknown_recipe_lists_known():
    with pytest.raises(ConfigError, match="known recipes"):
        load_config("no-such-recipe")


def test_section_hash_changes_with_content():
    a, b = load_config("demo"), load_config("demo", {"data.valid_fraction": 0.2})
    assert a.section_hash("data") != b.section_hash("data")
    assert a.section_hash("recommender") == b.section_hash("recommender")
