from django.core.management.base import BaseCommand, CommandError

from coordination.tokens import issue_token
from empathy_os import AccessTier, InvalidInputError


class Command(BaseCommand):
    help = "Create a bearer token for an agent and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("agent_id")
        parser.add_argument("--team", required=True, help="team id the token acts in")
        parser.add_argument("--tier", required=True, choices=[t.name.lower() for t in AccessTier])

    def handle(self, agent_id, team, tier, **options):
        try:
            token, row = issue_token(agent_id, team, tier, created_by="manage.py")
        except InvalidInputError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(f"Token for {row.agent_id} in team {row.team_id} ({tier}); it is shown only once:")
        self.stdout.write(token)
