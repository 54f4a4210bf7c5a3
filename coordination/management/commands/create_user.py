import getpass
import sys

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from coordination.access import GROUP_TIERS
from empathy_os import AccessTier


class Command(BaseCommand):
    help = "Create (or update) a person who logs in to the dashboard, with a tier."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--tier", required=True, choices=[t.name.lower() for t in AccessTier])
        parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin")

    def handle(self, username, tier, password_stdin=False, **options):
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass(f"Password for {username}: ")
            if password != getpass.getpass("Again: "):
                raise CommandError("the passwords differ")
        User = get_user_model()
        user = User(username=username)
        try:
            User._meta.get_field("username").run_validators(username)
            validate_password(password, user)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        group_name = next(name for name, t in GROUP_TIERS.items() if t.name.lower() == tier)
        with transaction.atomic():
            user, created = User.objects.get_or_create(username=username)
            user.set_password(password)
            user.save()
            user.groups.remove(*Group.objects.filter(name__in=GROUP_TIERS))
            user.groups.add(Group.objects.get(name=group_name))
        self.stdout.write(f"{'created' if created else 'updated'} {username} ({tier})")
