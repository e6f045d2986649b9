from rest_framework.permissions import SAFE_METHODS, BasePermission

from apps.directory.roles import Capability, has_capability


class StaffRolePermission(BasePermission):
    """Active staff, limited by role exactly as in the console.

    A view names the capability its reads and its writes need (`read_capability`,
    `write_capability`); views that name none are configuration (connectors, catalog,
    provisioning) and need the admin-level capabilities.
    """

    message = "Your role does not allow this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user is not None and getattr(user, "is_active", False) and getattr(user, "is_staff", False)):
            self.message = "Only active staff users may use the admin API."
            return False
        if request.method in SAFE_METHODS:
            needed = getattr(view, "read_capability", Capability.VIEW_CONNECTORS)
        else:
            needed = getattr(view, "write_capability", Capability.MANAGE_CONNECTORS)
        return has_capability(user, needed)
