from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("conversations.urls")),
]

handler400 = "chatproject.errors.bad_request"
handler404 = "chatproject.errors.page_not_found"
handler500 = "chatproject.errors.server_error"
