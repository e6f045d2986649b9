"""Admin API v1: a group's rule (read, write, remove), a preview of a rule, and what rules may test."""

from uuid import UUID

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api.serializers import StrictInputSerializer
from apps.api.views import _users_by_ids
from apps.common.errors import NotFoundError
from apps.directory.models import Group, RuleMatch
from apps.directory.roles import Capability
from apps.directory.rules.attributes import rule_attributes
from apps.directory.rules.conditions import MULTI_VALUED_OPERATORS, OPERATORS_BY_TYPE
from apps.directory.rules.selectors import group_rule, group_rule_preview
from apps.directory.rules.services import group_rule_remove, group_rule_save


class ConditionSerializer(serializers.Serializer):
    attribute = serializers.CharField(help_text="An attribute key from GET /group-rule-attributes")
    op = serializers.CharField(help_text="eq, ne, co, sw, ew, in, pr, gt, ge, lt, le (as the attribute's type allows)")
    value = serializers.JSONField(
        required=False, help_text="A string, number, date (YYYY-MM-DD), boolean, or a list for `in`; none for `pr`"
    )


class RuleInputSerializer(StrictInputSerializer):
    match = serializers.ChoiceField(choices=RuleMatch.choices, default=RuleMatch.ALL)
    # Checked one by one by the directory (apps.directory.rules.conditions), which names each bad one.
    conditions = serializers.ListField(child=serializers.JSONField(), help_text="[{attribute, op, value}, ...]")
    include = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        default=list,
        max_length=10_000,
        help_text="Users always members, whatever the rule says",
    )
    exclude = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        default=list,
        max_length=10_000,
        help_text="Users never members, whatever the rule says",
    )


class RuleWriteInputSerializer(RuleInputSerializer):
    confirm_removals = serializers.BooleanField(
        default=False,
        help_text="Needed when the change removes more members than the threshold at once; without it "
        "the answer is 400 with code `confirm_removals`, `removals` and `threshold`.",
    )


class UserRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    username = serializers.CharField()


class RuleOutputSerializer(serializers.Serializer):
    match = serializers.CharField()
    conditions = serializers.ListField(child=ConditionSerializer())
    rule = serializers.CharField(help_text='The rule as text: department eq "Engineering" and status eq "active"')
    include = UserRefSerializer(many=True)
    exclude = UserRefSerializer(many=True)
    error = serializers.CharField(help_text="Why the stored rule no longer applies (an attribute it reads was deleted)")


class RuleSavedSerializer(RuleOutputSerializer):
    added = serializers.IntegerField()
    removed = serializers.IntegerField()


class PreviewOutputSerializer(serializers.Serializer):
    rule = serializers.CharField()
    matches = serializers.IntegerField(help_text="Users the rule (with its exceptions) selects")
    added = serializers.IntegerField()
    removed = serializers.IntegerField()
    added_sample = serializers.ListField(child=serializers.CharField())
    removed_sample = serializers.ListField(child=serializers.CharField())
    confirmation_required = serializers.BooleanField()
    removal_threshold = serializers.IntegerField()


def _group(pk: UUID) -> Group:
    return get_object_or_404(Group, pk=pk)


def _rule_input(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    values = dict(serializer.validated_data)
    values["include"] = _users_by_ids(values.get("include") or [], "include")
    values["exclude"] = _users_by_ids(values.get("exclude") or [], "exclude")
    return values


def _rule_document(group: Group) -> dict:
    stored = group_rule(group)
    if stored is None:
        raise NotFoundError(f"{group.name} is not rule-based: its members are edited one by one.")
    return {
        "match": stored.match,
        "conditions": stored.conditions,
        "rule": stored.description,
        "include": [{"id": user.pk, "username": user.username} for user in stored.include],
        "exclude": [{"id": user.pk, "username": user.username} for user in stored.exclude],
        "error": stored.error,
    }


class GroupRuleView(APIView):
    read_capability = Capability.VIEW_DIRECTORY
    write_capability = Capability.MANAGE_DIRECTORY

    @extend_schema(responses={200: RuleOutputSerializer, 404: None})
    def get(self, request, group_id: UUID):
        return Response(RuleOutputSerializer(_rule_document(_group(group_id))).data)

    @extend_schema(request=RuleWriteInputSerializer, responses={200: RuleSavedSerializer})
    def put(self, request, group_id: UUID):
        """Make the group rule-based (or change its rule and exceptions); members are re-derived now."""
        group = _group(group_id)
        values = _rule_input(RuleWriteInputSerializer, request.data)
        saved = group_rule_save(actor=request.user, group=group, **values)
        document = _rule_document(group)
        return Response(RuleSavedSerializer({**document, "added": saved.added, "removed": saved.removed}).data)

    @extend_schema(responses={204: None})
    def delete(self, request, group_id: UUID):
        """Make the group manual again; its members stay."""
        group = _group(group_id)
        if group_rule(group) is None:
            raise Http404
        group_rule_remove(actor=request.user, group=group)
        return Response(status=status.HTTP_204_NO_CONTENT)


class GroupRulePreviewView(APIView):
    # A preview writes nothing: reading the directory is enough.
    read_capability = Capability.VIEW_DIRECTORY
    write_capability = Capability.VIEW_DIRECTORY

    @extend_schema(request=RuleInputSerializer, responses={200: PreviewOutputSerializer})
    def post(self, request, group_id: UUID):
        """What saving this rule would do: how many users match, who would be added and removed."""
        group = _group(group_id)
        values = _rule_input(RuleInputSerializer, request.data)
        preview = group_rule_preview(group, **values)
        return Response(PreviewOutputSerializer(preview.as_dict()).data)


class RuleAttributeListView(APIView):
    read_capability = Capability.VIEW_DIRECTORY

    @extend_schema(
        responses=inline_serializer(
            "RuleAttribute",
            {
                "name": serializers.CharField(),
                "label": serializers.CharField(),
                "type": serializers.CharField(),
                "multi_valued": serializers.BooleanField(),
                "operators": serializers.ListField(child=serializers.CharField()),
                "choices": serializers.ListField(child=serializers.CharField()),
            },
            many=True,
        )
    )
    def get(self, request):
        """The attributes a group rule may test (built-in, profile and custom), with their operators."""
        return Response(
            [
                {
                    "name": attribute.name,
                    "label": attribute.label,
                    "type": attribute.type,
                    "multi_valued": attribute.multi_valued,
                    "operators": [
                        op
                        for op in OPERATORS_BY_TYPE[attribute.type]
                        if not attribute.multi_valued or op in MULTI_VALUED_OPERATORS
                    ],
                    "choices": list(attribute.choices),
                }
                for attribute in rule_attributes().values()
            ]
        )
