import numpy as np

from ecr_ray.data.kg import load_kg, strip_disambiguation, uri_name
from ecr_ray.data.tables import load_dataset_kg


def test_uri_names():
    assert uri_name("<http://dbpedia.org/resource/Tom_Hanks>") == "Tom Hanks"
    assert uri_name("<http://dbpedia.org/ontology/starring>") == "starring"
    assert uri_name("<http://dbpedia.org/resource/O_Brother,_Where_Art_Thou%3F>") == "O Brother, Where Art Thou?"
    assert strip_disambiguation("Up (2009 film)") == "Up"


def _check_kg(kg):
    ei, et = kg.edge_index_and_type()
    n, t = kg.num_entities, len(kg.triples)
    assert ei.shape == (2, 2 * t + n) and et.shape == (2 * t + n,)
    assert int(ei.min()) >= 0 and int(ei.max()) < n
    assert int(et.max()) < kg.num_relations
    # both directions, same relation id
    fwd = set(map(tuple, np.stack([kg.triples[:, 0], kg.triples[:, 2], kg.triples[:, 1]], 1).tolist()))
    pairs = set(zip(ei[0].tolist(), ei[1].tolist(), et.tolist()))
    assert all((t_, h, r) in pairs for h, t_, r in list(fwd)[:500])
    # one self loop per entity
    loop = kg.relation2id["self_loop"]
    assert int((et == loop).sum()) == n
    assert set(kg.item_ids.tolist()) <= set(range(n))


def test_sample_kg(demo_cfg):
    kg = load_dataset_kg(demo_cfg)
    _check_kg(kg)
    movie = int(kg.item_ids[0])
    triples = kg.triples_for(movie, ("starring", "director"))
    assert triples, "sample movies have cast/director triples"
    sentence = kg.describe(triples[0])
    assert sentence.startswith(kg.names[movie] + "'s ") and " is " in sentence


def test_real_kg(real_data_dir):
    kg = load_kg(real_data_dir / "redial" / "kg")
    assert kg.num_entities == 31161 and kg.num_relations == 25 and len(kg.item_ids) == 6281
    _check_kg(kg)
