import secrets

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.directory import services
from apps.directory.models import Group, User

DEMO_ADMIN = "admin"
DEMO_PEOPLE = [
    ("ada.lovelace", "Ada", "Lovelace", "E1001", ["Engineering"]),
    ("alan.turing", "Alan", "Turing", "E1002", ["Engineering", "Research"]),
    ("grace.hopper", "Grace", "Hopper", "E1003", ["Engineering"]),
    ("katherine.johnson", "Katherine", "Johnson", "E1004", ["Research"]),
    ("margaret.hamilton", "Margaret", "Hamilton", "E1005", ["Engineering", "Research"]),
    ("claude.shannon", "Claude", "Shannon", "E1006", ["Sales"]),
]
# Profiles (apps.directory.attributes), so mappings and filters have something to show.
DEMO_PROFILES = {
    "ada.lovelace": {"title": "VP Engineering", "department": "Engineering", "timezone": "Europe/London"},
    "alan.turing": {"title": "Principal Scientist", "department": "Research", "manager": "ada.lovelace"},
    "grace.hopper": {"title": "Staff Engineer", "department": "Engineering", "manager": "ada.lovelace"},
    "katherine.johnson": {"title": "Research Scientist", "department": "Research", "manager": "alan.turing"},
    "margaret.hamilton": {"title": "Engineering Manager", "department": "Engineering", "manager": "ada.lovelace"},
    "claude.shannon": {"title": "Account Executive", "department": "Sales", "timezone": "America/New_York"},
}
DEMO_GROUPS = {
    "Engineering": "Builds the product.",
    "Research": "Long-range work.",
    "Sales": "Talks to customers.",
}


class Command(BaseCommand):
    help = "Create a demo admin and a few demo users and groups, once. Prints the admin's login."

    def handle(self, *args, **options) -> None:
        password_file = settings.VAR_DIR / "demo-admin-password.txt"
        if User.objects.filter(username=DEMO_ADMIN).exists():
            password = password_file.read_text().strip() if password_file.exists() else "(set on first run)"
            self.stdout.write(f"Demo data already present. Admin login: {DEMO_ADMIN} / {password}")
            return
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            services.user_create(
                actor=None,
                username=DEMO_ADMIN,
                email="admin@example.com",
                first_name="Demo",
                last_name="Admin",
                password=password,
                is_staff=True,
                is_superuser=True,
                validate_password=False,
            )
            groups = {
                name: services.group_create(actor=None, name=name, description=description)
                for name, description in DEMO_GROUPS.items()
            }
            people: dict[str, User] = {}
            for username, first_name, last_name, employee_id, group_names in DEMO_PEOPLE:
                profile = dict(DEMO_PROFILES.get(username, {}))
                if profile.get("manager"):
                    profile["manager"] = people[profile["manager"]]
                user = people[username] = services.user_create(
                    actor=None,
                    username=username,
                    email=f"{username}@example.com",
                    first_name=first_name,
                    last_name=last_name,
                    employee_id=employee_id,
                    organization="Example Corp",
                    **profile,
                )
                for name in group_names:
                    services.group_add_members(actor=None, group=groups[name], users=[user])
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        self.stdout.write(
            f"Created {len(DEMO_PEOPLE)} demo users and {Group.objects.count()} groups.\n"
            f"Admin login: {DEMO_ADMIN} / {password}"
        )
