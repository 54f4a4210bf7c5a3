from django.core.management.base import BaseCommand, CommandError

from coordination.tokens import revoke_tokens


class Command(BaseCommand):
    help = "Revoke every live token of an agent (of one team with --team)."

    def add_arguments(self, parser):
        parser.add_argument("agent_id")
        parser.add_argument("--team", help="only tokens of this team")

    def handle(self, agent_id, team=None, **options):
        count = revoke_tokens(agent_id, team)
        if count == 0:
            raise CommandError(f"no live token for agent {agent_id}" + (f" in team {team}" if team else ""))
        self.stdout.write(f"revoked {count} token(s) of {agent_id}")
