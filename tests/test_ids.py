import pytest

from mnc_core.ids import InvalidIdError, check_slug, is_slug, slugify


@pytest.mark.parametrize("value", ["sd15", "sdxl-base-1.0", "a_b", "0abc"])
def test_slugs_accepted(value):
    assert is_slug(value)
    assert check_slug(value, "x") == value


@pytest.mark.parametrize("value", ["", "A", "a/b", "a|b", "a,b", "a[b]", "-a", "a..b", "x" * 129])
def test_non_slugs_rejected_with_location(value):
    assert not is_slug(value)
    with pytest.raises(InvalidIdError, match="edges.csv row 3"):
        check_slug(value, "edges.csv row 3")


def test_slugify_maps_repo_ids():
    assert slugify("glue/sst2") == "glue--sst2"
    assert slugify("Jeevesh8/init_bert_ft_qqp-33") == "jeevesh8--init_bert_ft_qqp-33"
    assert is_slug(slugify("Tweet Eval / Irony!"))
