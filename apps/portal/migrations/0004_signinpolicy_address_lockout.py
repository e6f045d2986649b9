from django.conf import settings
from django.db import migrations, models


def saved_policy_gets_the_deployment_defaults(apps, schema_editor):
    # A policy saved before the address lock existed takes the deployment's defaults for it, as
    # an unsaved policy does (settings.PORTAL_LOCKOUT_ADDRESS_*).
    SignInPolicy = apps.get_model("portal", "SignInPolicy")
    SignInPolicy.objects.update(
        lockout_address_failure_limit=settings.PORTAL_LOCKOUT_ADDRESS_FAILURE_LIMIT,
        lockout_address_cooloff_seconds=settings.PORTAL_LOCKOUT_ADDRESS_COOLOFF_SECONDS,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0003_signinpolicy"),
    ]

    operations = [
        migrations.AddField(
            model_name="signinpolicy",
            name="lockout_address_failure_limit",
            field=models.PositiveIntegerField(default=50),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="signinpolicy",
            name="lockout_address_cooloff_seconds",
            field=models.PositiveIntegerField(default=900),
            preserve_default=False,
        ),
        migrations.RunPython(saved_policy_gets_the_deployment_defaults, migrations.RunPython.noop),
    ]
