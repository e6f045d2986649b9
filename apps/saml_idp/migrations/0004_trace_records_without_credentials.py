"""Messages recorded before the tracer removed signature values, digests and ciphertext still hold
them: remove them now, as the tracer does for new messages (apps/saml_idp/trace_xml.py)."""

from django.db import migrations
from lxml import etree

_MARKERS = ("SignatureValue", "DigestValue", "CipherValue")


def strip_stored_credentials(apps, schema_editor):
    from apps.saml_idp.trace_xml import without_credentials

    SamlTraceRecord = apps.get_model("saml_idp", "SamlTraceRecord")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    for record in SamlTraceRecord.objects.only("id", "xml").iterator():
        if not any(marker in record.xml for marker in _MARKERS):
            continue
        try:
            root = etree.fromstring(record.xml.encode(), parser)
        except etree.XMLSyntaxError:
            record.xml = ""
        else:
            record.xml = etree.tostring(without_credentials(root), encoding="unicode")
        record.save(update_fields=["xml"])


class Migration(migrations.Migration):
    dependencies = [
        ("saml_idp", "0003_trace_logout_responses"),
    ]

    operations = [
        migrations.RunPython(strip_stored_credentials, migrations.RunPython.noop),
    ]
