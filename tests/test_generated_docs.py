"""The docs' benchmark numbers are what the stored records say: every generated block of README.md and docs/*.md
equals what ``python -m benchmarks.tables`` writes from ``benchmarks/results/``."""

import pytest

from benchmarks import tables


def test_every_generated_block_matches_the_stored_records():
    stale = [p.name for p in tables.markdown_files() if tables.generate(p.read_text(encoding="utf-8"))
             != p.read_text(encoding="utf-8")]
    assert stale == []  # else run: python -m benchmarks.tables


def test_the_headline_numbers_are_generated_blocks():
    blocks = {m["name"] for p in tables.markdown_files() for m in tables.BLOCK.finditer(p.read_text(encoding="utf-8"))}
    assert {"loop", "loop-summary", "views", "domain-shift", "domain-shift-summary", "model-scores"} <= blocks


def test_a_block_shows_the_record_it_is_made_from():
    text = tables.generate("<!-- generated: domain-shift-summary -->\nstale\n<!-- end generated -->\n")
    # the shipped default on the whole domain-shift set, as benchmarks/results/domain_shift.json stores it
    row = next(r for r in tables.records.read("domain_shift.json")[0]["rows"]
               if (r["model"], r["object_size"], r["data"]) == ("shipped default", "as is", "all"))
    assert f"**{row['f1']:.3f}**" in text and "stale" not in text


def test_an_unknown_block_names_the_known_ones():
    with pytest.raises(KeyError, match="loop-summary"):
        tables.generate("<!-- generated: nothing -->\n<!-- end generated -->\n")
