"""Factories that build directory objects through the same services the product uses."""

import factory

from apps.directory import services
from apps.directory.models import Group, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    employee_id = factory.Sequence(lambda n: f"E{10000 + n}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        kwargs.setdefault("validate_password", False)
        return services.user_create(actor=None, **kwargs)


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group

    name = factory.Sequence(lambda n: f"Group {n}")
    description = ""

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return services.group_create(actor=None, **kwargs)
