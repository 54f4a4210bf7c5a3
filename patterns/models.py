"""The durable pattern library and the audit trail of validators' decisions."""

from django.db import models


class LibraryPattern(models.Model):
    """A pattern a validator approved. Agents look here before rediscovering."""

    team_id = models.CharField(max_length=128)
    pattern_id = models.CharField(max_length=128)
    pattern_type = models.CharField(max_length=128, db_index=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    code = models.TextField(blank=True)
    confidence = models.FloatField()
    context = models.JSONField(default=dict, blank=True)
    discovered_by = models.CharField(max_length=128)
    content_hash = models.CharField(max_length=64, db_index=True)
    promoted_by = models.CharField(max_length=150)
    promoted_at = models.DateTimeField(auto_now_add=True)
    reuse_count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team_id", "pattern_id"], name="unique_library_pattern")]
        ordering = ["-promoted_at"]

    def __str__(self):
        return f"{self.name} ({self.pattern_type})"


class PatternDecision(models.Model):
    """Who decided what on a staged pattern, when, and why. One decision per pattern."""

    PROMOTED, REJECTED = "promoted", "rejected"

    team_id = models.CharField(max_length=128)
    pattern_id = models.CharField(max_length=128)
    decision = models.CharField(max_length=16, choices=[(PROMOTED, "promoted"), (REJECTED, "rejected")])
    decided_by = models.CharField(max_length=150)
    decided_at = models.DateTimeField(auto_now_add=True)
    note = models.TextField(blank=True)
    pattern = models.JSONField(help_text="the staged pattern as it was decided")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team_id", "pattern_id"], name="unique_pattern_decision")]
        ordering = ["-decided_at"]

    def __str__(self):
        return f"{self.pattern_id}: {self.decision} by {self.decided_by}"


class LibraryLookup(models.Model):
    """Counts library look-ups (the denominator of the pattern reuse rate), one row per team."""

    team_id = models.CharField(max_length=128, unique=True)
    lookups = models.PositiveBigIntegerField(default=0)
    hits = models.PositiveBigIntegerField(default=0)
