from django.urls import path

from . import views

urlpatterns = [
    path("", views.chat_page, name="chat"),
    path("c/<uuid:conversation_id>/", views.chat_page, name="conversation"),
    path("api/conversations/", views.conversations_api, name="api-conversations"),
    path("api/conversations/<str:conversation_id>/", views.conversation_api, name="api-conversation"),
    path("api/conversations/<str:conversation_id>/messages/", views.messages_api, name="api-messages"),
    path("api/conversations/<str:conversation_id>/export", views.export_api, name="api-export"),
    path("api/models/", views.models_api, name="api-models"),
    path("api/approvals/", views.approvals_api, name="api-approvals"),
    path("api/tasks/", views.tasks_api, name="api-tasks"),
    path("approvals/", views.approvals_page, name="approvals"),
    path("tasks/", views.tasks_page, name="tasks"),
    path("healthz", views.healthz, name="healthz"),
]
