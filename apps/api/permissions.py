from rest_framework.permissions import BasePermission


class IsActiveStaff(BasePermission):
    message = "Only active staff users may use the admin API."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user is not None and getattr(user, "is_active", False) and getattr(user, "is_staff", False))
