"""A sweep's `--param PATH=v1,v2,...`: values read as one YAML flow sequence."""

from __future__ import annotations

import pytest

from clearline.sim.sweep import Axis


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("a=1,2.5", (1, 2.5)),
        ("a=true,false", (True, False)),
        ("a=disrupt,strike", ("disrupt", "strike")),
        ("sides.US.doctrine.trust_prior=[1, 9],[9, 1]", ([1, 9], [9, 1])),
        (
            "d={type: fixed, value_s: 1},{median_s: 3}",
            ({"type": "fixed", "value_s": 1}, {"median_s": 3}),
        ),
    ],
)
def test_values_may_be_numbers_names_lists_and_mappings(
    text: str, values: tuple[object, ...]
) -> None:
    assert Axis.parse(text).values == values


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('a=1,"x', "a: cannot read the values '1,\"x' at character 6"),
        ("a=[1, 2", "a: cannot read the values"),
        ("a=", "expected PATH=v1,v2,..."),
        ("=1,2", "expected PATH=v1,v2,..."),
    ],
)
def test_values_that_are_not_yaml_are_named(text: str, expected: str) -> None:
    with pytest.raises(ValueError, match=r".") as caught:
        Axis.parse(text)
    assert expected in str(caught.value)
