"""Every console URL is behind `console_view`: no page was left without a role check."""

from django.urls import URLPattern, URLResolver, get_resolver

from apps.directory.roles import Capability

# The password/code prompt itself: any staff member with a second factor may use it.
UNGUARDED_ALLOWED = {"reauth"}
# Actions that must ask for the password or a code again on an old sign-in (issue 7).
MUST_BE_SENSITIVE = {"key_rotate", "key_generate_next", "scim_token_create", "api_token_create", "user_role"}


def _console_patterns():
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver) and entry.namespace == "console":
            yield from _walk(entry.url_patterns)


def _walk(patterns):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns)
        elif isinstance(entry, URLPattern):
            yield entry


def test_every_console_view_checks_a_capability():
    names = set()
    for pattern in _console_patterns():
        names.add(pattern.name)
        if pattern.name in UNGUARDED_ALLOWED:
            continue
        capability = getattr(pattern.callback, "console_capability", None)
        assert isinstance(capability, Capability), f"console:{pattern.name} is not wrapped in console_view"
    assert len(names) > 40


def test_sensitive_actions_demand_a_recent_sign_in():
    sensitive = {p.name for p in _console_patterns() if getattr(p.callback, "console_sensitive", False)}
    missing = MUST_BE_SENSITIVE - sensitive
    assert not missing, f"not marked sensitive: {missing}"


def test_configuration_pages_are_closed_to_the_help_desk():
    from apps.directory.models import AdminRole
    from apps.directory.roles import ROLE_CAPABILITIES

    helpdesk = ROLE_CAPABILITIES[AdminRole.HELPDESK]
    for pattern in _console_patterns():
        if pattern.name.startswith(("connector", "key", "scim_token", "api_token", "settings", "upstream")):
            assert pattern.callback.console_capability not in helpdesk, pattern.name


def test_defining_custom_attributes_takes_the_profile_schema_capability():
    """Everyone who sees the directory sees the definitions; only admins define them (not the help desk)."""
    guarded = {p.name: p.callback.console_capability for p in _console_patterns() if p.name.startswith("custom_attr")}
    assert guarded == {
        "custom_attribute_list": Capability.VIEW_DIRECTORY,
        "custom_attribute_create": Capability.MANAGE_PROFILE_SCHEMA,
        "custom_attribute_edit": Capability.MANAGE_PROFILE_SCHEMA,
        "custom_attribute_delete": Capability.MANAGE_PROFILE_SCHEMA,
    }
