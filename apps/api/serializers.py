"""Input and output shapes of the admin API, kept apart so that neither leaks into the other."""

from rest_framework import serializers

from apps.api.profile_serializers import ProfileInputSerializer, ProfileOutputSerializer
from apps.audit.models import AuditEvent
from apps.directory.models import (
    DISPLAY_NAME_MAX_LENGTH,
    EMPLOYEE_ID_MAX_LENGTH,
    GROUP_NAME_MAX_LENGTH,
    NAME_MAX_LENGTH,
    USERNAME_MAX_LENGTH,
    Group,
    User,
    UserStatus,
)


class StrictInputSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo or a read-only field is an error, not a no-op."""

    def to_internal_value(self, data):
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        errors = {name: ["Unknown or read-only field."] for name in unknown}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not isinstance(exc.detail, dict):
                raise
            errors = {**exc.detail, **errors}
        if errors:
            raise serializers.ValidationError(errors)
        return value


# --- Users ------------------------------------------------------------------------------------


class GroupRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class UserOutputSerializer(ProfileOutputSerializer, serializers.ModelSerializer):
    groups = GroupRefSerializer(many=True, read_only=True)

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "email",
            "first_name",
            "last_name",
            "display_name",
            "employee_id",
            "status",
            "is_staff",
            "is_superuser",
            "must_change_password",
            *ProfileOutputSerializer._declared_fields,
            "groups",
            "created",
            "updated",
        ]
        read_only_fields = fields


class UserCreateInputSerializer(StrictInputSerializer, ProfileInputSerializer):
    username = serializers.CharField(max_length=USERNAME_MAX_LENGTH)
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    first_name = serializers.CharField(required=False, allow_blank=True, max_length=NAME_MAX_LENGTH)
    last_name = serializers.CharField(required=False, allow_blank=True, max_length=NAME_MAX_LENGTH)
    display_name = serializers.CharField(required=False, allow_blank=True, max_length=DISPLAY_NAME_MAX_LENGTH)
    employee_id = serializers.CharField(required=False, allow_blank=True, max_length=EMPLOYEE_ID_MAX_LENGTH)
    status = serializers.ChoiceField(choices=UserStatus.choices, required=False, default=UserStatus.ACTIVE)
    password = serializers.CharField(required=False, write_only=True, max_length=256, trim_whitespace=False)
    password_temporary = serializers.BooleanField(
        required=False,
        default=True,
        help_text="The person must choose their own password at their first sign-in (with `password`).",
    )
    is_staff = serializers.BooleanField(required=False, default=False)
    is_superuser = serializers.BooleanField(required=False, default=False)


class UserUpdateInputSerializer(StrictInputSerializer, ProfileInputSerializer):
    username = serializers.CharField(required=False, max_length=USERNAME_MAX_LENGTH)
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    first_name = serializers.CharField(required=False, allow_blank=True, max_length=NAME_MAX_LENGTH)
    last_name = serializers.CharField(required=False, allow_blank=True, max_length=NAME_MAX_LENGTH)
    display_name = serializers.CharField(required=False, allow_blank=True, max_length=DISPLAY_NAME_MAX_LENGTH)
    employee_id = serializers.CharField(required=False, allow_blank=True, max_length=EMPLOYEE_ID_MAX_LENGTH)
    status = serializers.ChoiceField(choices=UserStatus.choices, required=False)
    password = serializers.CharField(required=False, write_only=True, max_length=256, trim_whitespace=False)
    password_temporary = serializers.BooleanField(
        required=False,
        default=True,
        help_text="The person must choose their own password at their next sign-in (with `password`).",
    )
    is_staff = serializers.BooleanField(required=False)
    is_superuser = serializers.BooleanField(required=False)


class UserImportInputSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A CSV file (UTF-8) with a header line.")


class UserImportRowErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    username = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class UserImportReportSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    refused = serializers.IntegerField()
    errors = UserImportRowErrorSerializer(many=True, help_text="The refused rows (the first 500).")


class UserSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "email", "display_name", "status"]
        read_only_fields = fields


# --- Groups -----------------------------------------------------------------------------------


class GroupOutputSerializer(serializers.ModelSerializer):
    members = serializers.SerializerMethodField()
    member_count = serializers.SerializerMethodField()
    rule_based = serializers.SerializerMethodField(
        help_text="Members follow the group's rule (GET /groups/{id}/rule) and cannot be edited one by one."
    )

    class Meta:
        model = Group
        fields = ["id", "name", "description", "members", "member_count", "rule_based", "created", "updated"]
        read_only_fields = fields

    def get_rule_based(self, group: Group) -> bool:
        return bool(getattr(group, "rule_based", False))

    def get_members(self, group: Group) -> list[str]:
        return [str(membership.user_id) for membership in group.memberships.all()]

    def get_member_count(self, group: Group) -> int:
        return len(group.memberships.all())


class GroupCreateInputSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=GROUP_NAME_MAX_LENGTH)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    members = serializers.ListField(child=serializers.UUIDField(), required=False, max_length=10_000)


class GroupUpdateInputSerializer(StrictInputSerializer):
    name = serializers.CharField(required=False, max_length=GROUP_NAME_MAX_LENGTH)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    members = serializers.ListField(child=serializers.UUIDField(), required=False, max_length=10_000)


class MemberAddInputSerializer(StrictInputSerializer):
    user = serializers.UUIDField(required=False)
    users = serializers.ListField(child=serializers.UUIDField(), required=False, max_length=10_000)

    def validate(self, attrs):
        if not attrs.get("user") and not attrs.get("users"):
            raise serializers.ValidationError({"user": ["Give `user` (one id) or `users` (a list of ids)."]})
        return attrs


# --- Audit ------------------------------------------------------------------------------------


class AuditEventOutputSerializer(serializers.ModelSerializer):
    actor = serializers.UUIDField(source="actor_id", read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created",
            "actor",
            "actor_label",
            "action",
            "target_type",
            "target_id",
            "target_label",
            "before",
            "after",
            "request_id",
            "ip",
        ]
        read_only_fields = fields
