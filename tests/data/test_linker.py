import numpy as np
import pytest

from ecr_ray.data.kg import KnowledgeGraph
from ecr_ray.data.linker import EntityLinker
from ecr_ray.data.tables import load_dataset_kg


@pytest.fixture(scope="module")
def tiny_linker():
    uris = [
        "Tom_Hanks",
        "Horror_film",
        "Toy_Story",
        "The_Game_(rapper)",
        "Mars_(actor)",
        "Jack_Black",
        "Black_(film)",
        "Love",
        "Steven_Spielberg",
        "Jurassic_Park_(film)",
    ]
    entity2id = {f"<http://dbpedia.org/resource/{u}>": i for i, u in enumerate(uris)}
    relation2id = {
        "<http://dbpedia.org/ontology/genre>": 0,
        "<http://dbpedia.org/ontology/starring>": 1,
        "self_loop": 2,
    }
    triples = np.array([[2, 0, 1], [2, 1, 0], [9, 1, 5], [9, 0, 1], [6, 1, 5]])
    kg = KnowledgeGraph(entity2id, relation2id, triples, np.array([2, 6, 9]))
    return EntityLinker.from_kg(kg), kg


def names(linker_kg, text):
    linker, kg = linker_kg
    return [kg.names[m.entity_id] for m in linker.link(text)]


def test_links_people_and_genre_aliases(tiny_linker):
    assert names(tiny_linker, "I love Tom Hanks and a good horror movie") == ["Tom Hanks", "Horror film"]
    assert names(tiny_linker, "any horror films?") == ["Horror film"]
    assert names(tiny_linker, "tom hanks is great") == ["Tom Hanks"]  # multi-word names: case-insensitive


def test_word_boundaries_and_longest_match(tiny_linker):
    assert names(tiny_linker, "Tom Hanksy") == []
    assert names(tiny_linker, "Jack Black rocks") == ["Jack Black"]  # not "Black"


def test_ambiguous_names_are_not_linked(tiny_linker):
    assert names(tiny_linker, "I saw the game on Mars, love it") == []
    assert names(tiny_linker, "Love it") == []


def test_items_excluded_by_default(tiny_linker):
    assert names(tiny_linker, "Toy Story and Jurassic Park") == []


def test_items_by_title_and_short_titles_only_with_their_disambiguation(tiny_linker):
    _, kg = tiny_linker
    with_items = (EntityLinker.from_kg(kg, include_items=True), kg)
    assert names(with_items, "Toy Story and Jurassic Park") == ["Toy Story", "Jurassic Park (film)"]
    assert names(with_items, "Black is great") == []  # one short word: ambiguous
    assert names(with_items, "Black (film) is great") == ["Black (film)"]  # the KG name in full is not
    assert names(with_items, "I love Tom Hanks") == ["Tom Hanks"]  # other entities as before


def test_link_ids_unique_in_order(tiny_linker):
    linker, kg = tiny_linker
    ids = linker.link_ids("Steven Spielberg, horror, Steven Spielberg")
    assert [kg.names[i] for i in ids] == ["Steven Spielberg", "Horror film"]


def test_sample_dialogues_get_links(demo_cfg):
    kg = load_dataset_kg(demo_cfg)
    linker = EntityLinker.from_kg(kg)
    assert linker.size > 20
