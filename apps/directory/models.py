import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F
from django.db.models.functions import Lower, Upper

from apps.common.models import TimeStampedModel

USERNAME_MAX_LENGTH = 150
NAME_MAX_LENGTH = 150
DISPLAY_NAME_MAX_LENGTH = 255
EMPLOYEE_ID_MAX_LENGTH = 64
GROUP_NAME_MAX_LENGTH = 150
# RFC 7643 profile attributes kept as text (core User and Enterprise User extension).
PROFILE_TEXT_MAX_LENGTH = 255
LANGUAGE_TAG_MAX_LENGTH = 35  # BCP 47 tags as used by preferredLanguage and locale
TIMEZONE_MAX_LENGTH = 64  # an IANA time zone name ("Europe/Paris")
URL_MAX_LENGTH = 2000
CUSTOM_ATTRIBUTE_NAME_MAX_LENGTH = 64

username_validator = RegexValidator(
    regex=r"^[\w.@+-]+\Z",
    message="Enter a valid username: letters, digits and @ . + - _ only, no spaces.",
    code="invalid_username",
)


class UserStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    # Created ahead of a start date: exists everywhere, may not sign in yet.
    STAGED = "staged", "Staged"


class AdminRole(models.TextChoices):
    """What a staff user may do in the console and the admin API (apps.directory.roles)."""

    SUPER_ADMIN = "super_admin", "Super-admin"
    ADMIN = "admin", "Admin"
    # Users and groups only: the people who answer "I can't sign in".
    HELPDESK = "helpdesk", "Help desk"
    READONLY = "readonly", "Read-only"


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_by_natural_key(self, username: str) -> "User":
        return self.alias(username_lower=Lower("username")).get(username_lower=username.lower())

    def create_user(self, username: str, email: str = "", password: str | None = None, **extra) -> "User":
        # Kept for Django's own tooling (createsuperuser); the product writes through services.
        user = self.model(username=username, email=self.normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, username: str, email: str = "", password: str | None = None, **extra) -> "User":
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(username, email, password, **extra)


class User(AbstractBaseUser, TimeStampedModel):
    """A person in the directory. `id` is immutable: the SCIM id and the persistent NameID."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    username = models.CharField(max_length=USERNAME_MAX_LENGTH, validators=[username_validator])
    email = models.EmailField("company email", max_length=254, blank=True)
    # The company email's SCIM `type` ("work", "home"...), kept so that what a SCIM client sent reads back.
    email_type = models.CharField("company email type", max_length=64, blank=True)
    first_name = models.CharField(max_length=NAME_MAX_LENGTH, blank=True)
    last_name = models.CharField(max_length=NAME_MAX_LENGTH, blank=True)
    display_name = models.CharField(max_length=DISPLAY_NAME_MAX_LENGTH, blank=True)
    employee_id = models.CharField("employee ID", max_length=EMPLOYEE_ID_MAX_LENGTH, blank=True)
    # The identifier an upstream provisioning client (HR system, another IdP) knows this user by.
    external_id = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=UserStatus.choices, default=UserStatus.ACTIVE)
    is_staff = models.BooleanField(default=False, help_text="May use the admin console and API.")
    is_superuser = models.BooleanField(default=False, help_text="Has every permission.")
    # Narrows what a staff user may do; empty means "admin" for staff, nothing for everyone else.
    admin_role = models.CharField(max_length=16, choices=AdminRole.choices, blank=True, default="")
    # Set by an admin's temporary password: the person chooses their own at their next sign-in,
    # before any other page (apps.portal.middleware.PasswordChangeRequiredMiddleware).
    must_change_password = models.BooleanField(default=False)

    # --- RFC 7643 core User profile (apps.directory.attributes names each one and its SCIM path) ---
    nick_name = models.CharField(max_length=PROFILE_TEXT_MAX_LENGTH, blank=True)
    title = models.CharField(max_length=PROFILE_TEXT_MAX_LENGTH, blank=True)
    user_type = models.CharField(max_length=PROFILE_TEXT_MAX_LENGTH, blank=True)
    preferred_language = models.CharField(max_length=LANGUAGE_TAG_MAX_LENGTH, blank=True)
    locale = models.CharField(max_length=LANGUAGE_TAG_MAX_LENGTH, blank=True)
    timezone = models.CharField(max_length=TIMEZONE_MAX_LENGTH, blank=True)
    profile_url = models.URLField(max_length=URL_MAX_LENGTH, blank=True)
    # Multi-valued attributes, each a list of {"value", "type", "primary"} objects (addresses:
    # {"formatted", "street_address", "locality", "region", "postal_code", "country", "type",
    # "primary"}); apps.directory.profile cleans them so that at most one is primary. `emails` holds
    # the secondary addresses: the primary one is `email`. JSON lists on the row rather than child
    # tables: a user is read and written whole, and a GIN index (PostgreSQL, migration 0009)
    # serves equality filters such as phoneNumbers.value through `@>`.
    emails = models.JSONField(default=list, blank=True)
    phone_numbers = models.JSONField(default=list, blank=True)
    addresses = models.JSONField(default=list, blank=True)
    photos = models.JSONField(default=list, blank=True)

    # --- Enterprise User extension (employeeNumber is `employee_id`) ---
    cost_center = models.CharField(max_length=PROFILE_TEXT_MAX_LENGTH, blank=True)
    organization = models.CharField(max_length=PROFILE_TEXT_MAX_LENGTH, blank=True)
    division = models.CharField(max_length=PROFILE_TEXT_MAX_LENGTH, blank=True)
    department = models.CharField(max_length=PROFILE_TEXT_MAX_LENGTH, blank=True)
    # The FK's own index serves manager.value filters and "who reports to X".
    manager = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reports")

    # Values of the admin-defined CustomAttribute definitions, keyed by their name.
    custom_attributes = models.JSONField(default=dict, blank=True)

    objects = UserManager()

    USERNAME_FIELD = "username"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["email"]

    class Meta:
        ordering = ["username"]
        constraints = [
            models.UniqueConstraint(Lower("username"), name="directory_user_username_ci_unique"),
            models.UniqueConstraint(
                Lower("email"), condition=~models.Q(email=""), name="directory_user_email_ci_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["employee_id"], name="directory_user_employee_idx"),
            # Declared here rather than with db_index=True, which on PostgreSQL adds a second,
            # LIKE-only copy of each index: nothing searches these by prefix, and every copy is
            # written on each change of a user.
            models.Index(fields=["external_id"], name="directory_user_external_idx"),
            models.Index(fields=["status"], name="directory_user_status_idx"),
            models.Index(fields=["last_name", "first_name"], name="directory_user_name_idx"),
            # Every list (console, API, SCIM) pages in username order: the index serves the sort.
            models.Index(fields=["username"], name="directory_user_username_idx"),
            # SCIM compares title and department case-insensitively (caseExact false), as
            # UPPER(col) = UPPER(value): these expression indexes serve exactly that, and in
            # username order, so a page of matches reads only its own rows (without the username
            # the planner walks the username index past every non-match: 14 ms instead of 0.3 ms
            # for a 0.5% title at 100,000 users, bench/profile_filters.py).
            models.Index(Upper("title"), F("username"), name="directory_user_title_ci_idx"),
            models.Index(Upper("department"), F("username"), name="directory_user_dept_ci_idx"),
        ]

    def __str__(self) -> str:
        return self.username

    @property
    def is_active(self) -> bool:
        return self.status == UserStatus.ACTIVE

    @property
    def console_role(self) -> str:
        """The effective role: super-admins by flag, other staff by `admin_role` (admin if unset)."""
        if not self.is_staff and not self.is_superuser:
            return ""
        if self.is_superuser:
            return AdminRole.SUPER_ADMIN
        return self.admin_role if self.admin_role and self.admin_role != AdminRole.SUPER_ADMIN else AdminRole.ADMIN

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def get_full_name(self) -> str:
        return self.display_name or self.full_name

    def get_short_name(self) -> str:
        return self.first_name or self.username

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return self.is_active and self.is_superuser

    def has_perms(self, perm_list, obj: object = None) -> bool:
        return all(self.has_perm(perm, obj) for perm in perm_list)

    def has_module_perms(self, app_label: str) -> bool:
        return self.is_active and self.is_superuser


class CustomAttributeType(models.TextChoices):
    STRING = "string", "Text"
    NUMBER = "number", "Number"
    BOOLEAN = "boolean", "Yes/no"
    DATE = "date", "Date"
    ENUM = "enum", "One of a list"


custom_attribute_name_validator = RegexValidator(
    # A SCIM attribute name (RFC 7643 2.1) that is also a plain identifier: rules and mappings say
    # `custom.<name>`.
    regex=r"^[A-Za-z][A-Za-z0-9_]*\Z",
    message="Start with a letter; then letters, digits and _ only.",
    code="invalid_name",
)


class CustomAttribute(TimeStampedModel):
    """An attribute an admin added to every user's profile; values live in User.custom_attributes."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=CUSTOM_ATTRIBUTE_NAME_MAX_LENGTH, validators=[custom_attribute_name_validator])
    label = models.CharField(max_length=150)
    description = models.TextField(blank=True, max_length=1000)
    type = models.CharField(max_length=16, choices=CustomAttributeType.choices, default=CustomAttributeType.STRING)
    # The allowed values of an enum attribute, in the order offered.
    choices = models.JSONField(default=list, blank=True)
    multi_valued = models.BooleanField(default=False)
    required = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), name="directory_customattribute_name_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class Group(TimeStampedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=GROUP_NAME_MAX_LENGTH)
    description = models.TextField(blank=True, max_length=2000)
    external_id = models.CharField(max_length=255, blank=True, db_index=True)
    members = models.ManyToManyField(User, through="Membership", related_name="groups")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(Lower("name"), name="directory_group_name_ci_unique")]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "user"], name="directory_membership_unique")]
        indexes = [models.Index(fields=["user", "group"], name="directory_membership_user_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.group_id}"


class ImportStatus(models.TextChoices):
    PENDING = "pending", "Waiting to start"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class GroupImportJob(models.Model):
    """A bulk add of members from a CSV file: the parsed rows, and the progress the page polls."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="import_jobs")
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    filename = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.PENDING)
    # [[line number, username or email], ...] as read from the file, before any lookup.
    rows = models.JSONField(default=list)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    added_count = models.PositiveIntegerField(default=0)
    already_member_count = models.PositiveIntegerField(default=0)
    # [[line number, value], ...] of the first rows that name no user (UNKNOWN_ROWS_KEPT), and how many.
    unknown_rows = models.JSONField(default=list)
    unknown_count = models.PositiveIntegerField(default=0)
    # The same for rows naming administrators whose groups the job's creator may not change.
    refused_rows = models.JSONField(default=list)
    refused_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"import into {self.group_id} ({self.status}, {self.processed_rows}/{self.total_rows})"

    @property
    def finished(self) -> bool:
        return self.status in (ImportStatus.DONE, ImportStatus.FAILED)

    @property
    def percent(self) -> int:
        return 100 if not self.total_rows else min(100, self.processed_rows * 100 // self.total_rows)


# Rule-based groups keep their models beside their code; imported here so Django sees them.
from apps.directory.rules.models import (  # noqa: E402, F401
    ExceptionKind,
    GroupRule,
    GroupRuleAttribute,
    GroupRuleException,
    RuleMatch,
)
