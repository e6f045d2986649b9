"""Shapes of the profile in the admin API: the multi-valued attributes, the manager, custom
attributes and their definitions. The directory's services do the checking; these shapes document
the API (OpenAPI) and refuse what is not even the right kind of value."""

from rest_framework import serializers

from apps.directory.models import (
    CUSTOM_ATTRIBUTE_NAME_MAX_LENGTH,
    LANGUAGE_TAG_MAX_LENGTH,
    PROFILE_TEXT_MAX_LENGTH,
    TIMEZONE_MAX_LENGTH,
    URL_MAX_LENGTH,
    CustomAttribute,
    CustomAttributeType,
)


class StrictItemSerializer(serializers.Serializer):
    """An item of a list attribute: unknown parts are errors, not silently dropped."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown part."] for name in unknown})
        return super().to_internal_value(data)


class MultiValuedItemSerializer(StrictItemSerializer):
    value = serializers.CharField(max_length=URL_MAX_LENGTH)
    display = serializers.CharField(required=False, allow_blank=True, max_length=PROFILE_TEXT_MAX_LENGTH)
    type = serializers.CharField(required=False, allow_blank=True, max_length=64, help_text="work, home, mobile...")
    primary = serializers.BooleanField(required=False, default=False, help_text="At most one item is primary.")


class EmailItemSerializer(MultiValuedItemSerializer):
    primary = serializers.BooleanField(
        required=False, default=False, help_text="Always false: the primary email is `email`."
    )


class AddressSerializer(StrictItemSerializer):
    formatted = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    street_address = serializers.CharField(required=False, allow_blank=True, max_length=PROFILE_TEXT_MAX_LENGTH)
    locality = serializers.CharField(required=False, allow_blank=True, max_length=PROFILE_TEXT_MAX_LENGTH)
    region = serializers.CharField(required=False, allow_blank=True, max_length=PROFILE_TEXT_MAX_LENGTH)
    postal_code = serializers.CharField(required=False, allow_blank=True, max_length=PROFILE_TEXT_MAX_LENGTH)
    country = serializers.CharField(required=False, allow_blank=True, max_length=PROFILE_TEXT_MAX_LENGTH)
    type = serializers.CharField(required=False, allow_blank=True, max_length=64)
    primary = serializers.BooleanField(required=False, default=False)


class ManagerRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    username = serializers.CharField()
    display_name = serializers.CharField()


def _text(max_length: int = PROFILE_TEXT_MAX_LENGTH, **kwargs) -> serializers.CharField:
    return serializers.CharField(required=False, allow_blank=True, max_length=max_length, **kwargs)


class ProfileInputSerializer(serializers.Serializer):
    """The profile's writable fields, shared by the users' create and update input."""

    email_type = _text(64, help_text='The company email\'s type, e.g. "work".')
    nick_name = _text()
    title = _text()
    user_type = _text()
    preferred_language = _text(LANGUAGE_TAG_MAX_LENGTH * 4, help_text='e.g. "en-US" or "fr-CA, fr;q=0.8"')
    locale = _text(LANGUAGE_TAG_MAX_LENGTH, help_text='A language tag, e.g. "en-US"')
    timezone = _text(TIMEZONE_MAX_LENGTH, help_text='An IANA time zone, e.g. "Europe/Paris"')
    profile_url = _text(URL_MAX_LENGTH)
    emails = EmailItemSerializer(many=True, required=False, help_text="Other emails than `email`.")
    phone_numbers = MultiValuedItemSerializer(many=True, required=False)
    addresses = AddressSerializer(many=True, required=False)
    photos = MultiValuedItemSerializer(many=True, required=False, help_text="`value` is an http(s) URL.")
    cost_center = _text()
    organization = _text()
    division = _text()
    department = _text()
    manager = serializers.UUIDField(required=False, allow_null=True, help_text="The manager's user id.")
    custom_attributes = serializers.DictField(
        child=serializers.JSONField(allow_null=True),
        required=False,
        help_text="Values of custom attributes by name. On PATCH, names not given keep their value and "
        "null removes one.",
    )


class ProfileOutputSerializer(serializers.Serializer):
    """The profile as the API shows it (read from a user with select_related("manager"))."""

    email_type = serializers.CharField(read_only=True)
    nick_name = serializers.CharField(read_only=True)
    title = serializers.CharField(read_only=True)
    user_type = serializers.CharField(read_only=True)
    preferred_language = serializers.CharField(read_only=True)
    locale = serializers.CharField(read_only=True)
    timezone = serializers.CharField(read_only=True)
    profile_url = serializers.CharField(read_only=True)
    emails = EmailItemSerializer(many=True, read_only=True)
    phone_numbers = MultiValuedItemSerializer(many=True, read_only=True)
    addresses = AddressSerializer(many=True, read_only=True)
    photos = MultiValuedItemSerializer(many=True, read_only=True)
    cost_center = serializers.CharField(read_only=True)
    organization = serializers.CharField(read_only=True)
    division = serializers.CharField(read_only=True)
    department = serializers.CharField(read_only=True)
    manager = ManagerRefSerializer(read_only=True, allow_null=True)
    custom_attributes = serializers.DictField(child=serializers.JSONField(), read_only=True)


# --- Custom attribute definitions -----------------------------------------------------------------


class CustomAttributeOutputSerializer(serializers.ModelSerializer):
    key = serializers.SerializerMethodField(help_text="The key mappings and rules use: custom.<name>.")

    class Meta:
        model = CustomAttribute
        fields = [
            "id",
            "name",
            "key",
            "label",
            "description",
            "type",
            "choices",
            "multi_valued",
            "required",
            "created",
            "updated",
        ]
        read_only_fields = fields

    def get_key(self, definition: CustomAttribute) -> str:
        return f"custom.{definition.name}"


class _CustomAttributeInput(serializers.Serializer):
    def to_internal_value(self, data):
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        if unknown:
            raise serializers.ValidationError({name: ["Unknown or read-only field."] for name in unknown})
        return super().to_internal_value(data)


class CustomAttributeCreateInputSerializer(_CustomAttributeInput):
    name = serializers.CharField(
        max_length=CUSTOM_ATTRIBUTE_NAME_MAX_LENGTH, help_text="Letters, digits and _; fixed once created."
    )
    label = serializers.CharField(required=False, allow_blank=True, max_length=150)
    description = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    type = serializers.ChoiceField(choices=CustomAttributeType.choices, required=False, default="string")
    choices = serializers.ListField(child=serializers.CharField(max_length=255), required=False, max_length=500)
    multi_valued = serializers.BooleanField(required=False, default=False)
    required = serializers.BooleanField(required=False, default=False)


class CustomAttributeUpdateInputSerializer(_CustomAttributeInput):
    label = serializers.CharField(required=False, allow_blank=True, max_length=150)
    description = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    type = serializers.ChoiceField(choices=CustomAttributeType.choices, required=False)
    choices = serializers.ListField(child=serializers.CharField(max_length=255), required=False, max_length=500)
    multi_valued = serializers.BooleanField(required=False)
    required = serializers.BooleanField(required=False)
