"""A demo directory for the console walk-through: what a small company has after a few weeks.

Everything is made through the services the console and the API call (so the audit log fills up as
it would), by a super-admin who signs in with a password and an authenticator app. Names, emails
and URLs are long on purpose: the pages must hold them without overflowing.
"""

from dataclasses import dataclass, field

from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.api.services import api_token_create
from apps.connectors import services as connectors
from apps.directory import services as directory
from apps.directory.custom_attributes import custom_attribute_create
from apps.directory.models import AdminRole, CustomAttribute, Group, User
from apps.saml_idp import keys
from apps.saml_sp import services as upstreams
from apps.saml_sp.models import UpstreamIdentityProvider
from apps.scim_server.services import scim_token_create

PASSWORD = "s3cret-Pass-99"
ADMIN_USERNAME = "margaret.admin"

PEOPLE = [
    ("ada.lovelace", "Ada", "Lovelace", ["Engineering"]),
    ("alan.turing", "Alan", "Turing", ["Engineering", "Research"]),
    ("grace.hopper", "Grace", "Hopper", ["Engineering"]),
    ("katherine.johnson", "Katherine", "Johnson", ["Research"]),
    ("margaret.hamilton", "Margaret", "Hamilton", ["Engineering", "Research"]),
    ("claude.shannon", "Claude", "Shannon", ["Sales"]),
    ("maximilian.vandenberghe-oppenheimer", "Maximilian", "Vandenberghe-Oppenheimer", ["Sales", "Research"]),
]
GROUPS = {
    "Engineering": "Builds the product.",
    "Research": "Long-range work.",
    "Sales": "Talks to customers.",
    "Contractors with temporary access to the staging environment": "Reviewed every quarter.",
}
# Identity Management URLs are resolved when saved (the outbound guard): an address, not a name.
SCIM_HOST = "https://93.184.216.34"
UPSTREAM_METADATA = """<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    entityID="https://login.corporate-identity.example.com/saml2/idp/metadata/0f6a1c2e-84d5-4c0b-a1e9">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
      <ds:X509Data><ds:X509Certificate>{certificate}</ds:X509Certificate></ds:X509Data>
    </ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
        Location="https://login.corporate-identity.example.com/saml2/idp/SSOService"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
"""


@dataclass
class DemoDirectory:
    admin: User
    device: TOTPDevice
    people: dict[str, User] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    connectors: dict[str, str] = field(default_factory=dict)  # catalog template -> connector slug
    scim_token_id: int = 0
    api_token_id: int = 0
    upstream: UpstreamIdentityProvider | None = None
    custom_attribute: CustomAttribute | None = None


def _certificate_body() -> str:
    pair = keys.generate_key_pair(key_size=2048, validity_days=365, common_name="corporate IdP")
    lines = pair.certificate_pem.strip().splitlines()
    return "".join(line for line in lines if not line.startswith("-----"))


def _seed_profiles(demo: DemoDirectory) -> None:
    """A custom attribute, and a whole profile for alan.turing (long values, as people have)."""
    admin = demo.admin
    demo.custom_attribute = custom_attribute_create(
        actor=admin,
        name="building",
        label="Building and floor of the desk",
        type="enum",
        choices=["Bletchley Park, Hut 8", "Manchester, Computing Machine Laboratory"],
        description="Where the post room delivers.",
    )
    custom_attribute_create(actor=admin, name="clearance_level", label="Security clearance level", type="number")
    directory.user_update(
        actor=admin,
        user=demo.people["alan.turing"],
        title="Principal Research Scientist, Computing Machinery",
        department="Research and Development",
        division="Mathematics",
        organization="Acme Corporation Engineering",
        cost_center="CC-4711-RESEARCH",
        user_type="Employee",
        manager=demo.people["margaret.hamilton"],
        preferred_language="en-GB",
        locale="en-GB",
        timezone="Europe/London",
        emails=[{"value": "alan.turing.personal@private-mail.example-corporation.com", "type": "home"}],
        phone_numbers=[
            {"value": "+44 20 7946 0958", "type": "work", "primary": True},
            {"value": "+44 7700 900123", "type": "mobile"},
        ],
        addresses=[
            {
                "street_address": "Wilmslow Road, Hollymeade",
                "locality": "Wilmslow",
                "postal_code": "SK9 1AA",
                "country": "GB",
                "type": "home",
                "primary": True,
            },
        ],
        custom_attributes={"building": "Bletchley Park, Hut 8", "clearance_level": 3},
    )
    directory.user_update(
        actor=admin,
        user=demo.people["ada.lovelace"],
        title="Analyst",
        department="Research and Development",
        manager=demo.people["margaret.hamilton"],
    )


def seed_demo_directory() -> DemoDirectory:
    admin = directory.user_create(
        actor=None,
        username=ADMIN_USERNAME,
        email="margaret.admin@example.com",
        first_name="Margaret",
        last_name="Admin",
        password=PASSWORD,
        validate_password=False,
    )
    directory.user_set_admin_role(actor=None, user=admin, role=AdminRole.SUPER_ADMIN)
    device = TOTPDevice.objects.create(user=admin, name="Authenticator app", confirmed=True)
    demo = DemoDirectory(admin=admin, device=device)

    for name, description in GROUPS.items():
        demo.groups[name] = directory.group_create(actor=admin, name=name, description=description)
    for username, first_name, last_name, group_names in PEOPLE:
        person = directory.user_create(
            actor=admin,
            username=username,
            email=f"{username}@engineering.example-corporation.com",
            first_name=first_name,
            last_name=last_name,
            employee_id=f"E{1000 + len(demo.people)}",
        )
        demo.people[username] = person
        for name in group_names:
            directory.group_add_members(actor=admin, group=demo.groups[name], users=[person])
    directory.user_suspend(actor=admin, user=demo.people["claude.shannon"])
    _seed_profiles(demo)

    network = "acme-corporation-engineering"
    twingate = connectors.connector_create(
        actor=admin,
        template="twingate",
        sso={
            "sp_entity_id": f"https://{network}.twingate.com/auth/saml/metadata",
            "acs_urls": [{"url": f"https://{network}.twingate.com/auth/saml/callback/4f9d1b7e-2a6c"}],
        },
        provisioning={
            "enabled": True,
            "base_url": f"{SCIM_HOST}/api/scim/v2/tenants/7d3e9a41-acme-corporation-engineering",
            "token": "tg-demo-token-not-a-real-one",
        },
    )
    saml_app = connectors.connector_create(
        actor=admin,
        template="generic-saml",
        name="Expense reports (finance department)",
        sso={
            "sp_entity_id": "https://expenses.finance.example-corporation.com/saml/metadata",
            "acs_urls": [{"url": "https://expenses.finance.example-corporation.com/saml/acs"}],
        },
    )
    scim_app = connectors.connector_create(
        actor=admin,
        template="generic-scim",
        name="HR directory",
        provisioning={
            "enabled": True,
            "base_url": f"{SCIM_HOST}/hr/scim/v2",
            "token": "hr-demo-token-not-a-real-one",
        },
    )
    bookmark = connectors.connector_create(
        actor=admin,
        template="bookmark",
        name="Employee handbook",
        bookmark_url="https://handbook.example-corporation.com/welcome/first-week/getting-started",
    )
    oidc_app = connectors.connector_create(
        actor=admin,
        template="generic-oidc",
        name="Grafana dashboards (operations)",
        oidc={
            "redirect_uris": ["https://grafana.operations.example-corporation.com/login/generic_oauth"],
            "post_logout_redirect_uris": ["https://grafana.operations.example-corporation.com/logout"],
        },
    )
    for connector in (twingate, saml_app, scim_app, bookmark, oidc_app):
        connectors.assignment_create(actor=admin, connector=connector, group=demo.groups["Engineering"])
        demo.connectors[connector.template] = connector.slug
    connectors.assignment_create(actor=admin, connector=twingate, user=demo.people["claude.shannon"])
    connectors.connector_update(actor=admin, connector=bookmark, enabled=True)
    directory.group_add_members(actor=admin, group=demo.groups["Engineering"], users=[admin])

    keys.ensure_active_key()
    scim_token, _ = scim_token_create(actor=admin, name="HR system (Workday) nightly import")
    demo.scim_token_id = scim_token.pk
    api_token, _ = api_token_create(actor=admin, user=admin, name="Terraform")
    demo.api_token_id = api_token.pk
    demo.upstream = upstreams.upstream_create(
        actor=admin,
        name="Corporate IdP",
        slug="corp",
        metadata_xml=UPSTREAM_METADATA.format(certificate=_certificate_body()),
    )
    return demo
