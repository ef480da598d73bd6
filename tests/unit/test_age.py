"""age X25519 identities: the encoding of age's specification, and reading identity files."""

from __future__ import annotations

import pytest

from appflow.errors import ConfigError
from appflow.secrets import age

# The example of age-encryption.org/v1 ("The X25519 recipient type"): the identity whose
# 32 bytes are all 0x42, and its recipient.
SPEC_IDENTITY = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
SPEC_RECIPIENT = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"


def test_the_specification_example_derives_its_recipient() -> None:
    identity = age.parse_identity(SPEC_IDENTITY)
    assert identity.recipient == SPEC_RECIPIENT
    assert identity.secret == SPEC_IDENTITY
    assert age.is_recipient(SPEC_RECIPIENT)


def test_generated_identities_round_trip_and_never_show_their_secret() -> None:
    made = age.generate()
    assert age.parse_identity(made.secret) == made
    assert made.secret not in repr(made)
    text = age.format_identity_file(made, comment="test")
    assert age.parse_identities(text) == [made]
    assert f"# public key: {made.recipient}" in text


@pytest.mark.parametrize(
    "text",
    [
        SPEC_IDENTITY[:-1] + "Q",  # checksum
        SPEC_RECIPIENT,  # a recipient is not an identity
        "AGE-SECRET-KEY-1",
    ],
)
def test_bad_identities_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        age.parse_identity(text)


def test_an_identity_file_error_names_the_line_but_never_its_content() -> None:
    with pytest.raises(ConfigError) as caught:
        age.parse_identities(f"# comment\n{SPEC_IDENTITY}\nssh-ed25519 AAAAsecretish\n")
    assert "line 3" in str(caught.value)
    assert "AAAAsecretish" not in str(caught.value)
