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
    # ZeRO-2, not the paper's ZeRO-3: chosen by the memory plan for LoRA on 24 GB GPUs (docs/cluster.md)
    assert cfg.generator.zero_stage == 2 and cfg.generator.gradient_checkpointing
    assert cfg.conversation.base_model == "microsoft/DialoGPT-small" and cfg.conversation.train_resources.gpus == 1


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


@pytest.mark.parametrize("recipe", ["demo", "cpu", "paper"])
def test_every_checkpointing_train_run_restarts_after_a_failure(recipe):
    cfg = load_config(recipe)
    for section in ("emotion", "recommender", "generator", "conversation"):
        assert getattr(cfg, section).max_failures > 0, f"{recipe}: {section}.max_failures"


def test_chat_model_batches_are_global():
    g = load_config("paper").generator  # the paper's 16 = 4 workers × micro-batch 4
    assert (g.batch_size, g.micro_batch, g.accumulation, g.train_resources.workers) == (16, 4, 1, 4)
    g = load_config("paper", {"generator.micro_batch_size": 1}).generator
    assert (g.micro_batch, g.accumulation) == (1, 4)
    c = load_config("demo", {"conversation.batch_size": 6}).conversation
    assert (c.micro_batch, c.accumulation) == (6, 1)  # one worker, no accumulation: as before
    with pytest.raises(ConfigError, match=r"generator.batch_size \(16\) must be a multiple of .*size \(3\)"):
        load_config("paper", {"generator.micro_batch_size": 3})
