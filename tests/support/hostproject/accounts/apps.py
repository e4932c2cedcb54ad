from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "hostproject.accounts"
    label = "accounts"
