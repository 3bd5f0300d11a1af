"""Runs, their tags, sweeps and training jobs.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TEXT_DEFAULTS = dict(nullable=False, server_default="")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(200), **_TEXT_DEFAULTS),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("note", sa.Text, **_TEXT_DEFAULTS),
        sa.Column("search", sa.Text, **_TEXT_DEFAULTS),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("parent", sa.String(16)),
        sa.Column("sweep", sa.String(16)),
        sa.Column("video", sa.Text, **_TEXT_DEFAULTS),
        sa.Column("detector", sa.String(64)),
        sa.Column("tracker", sa.String(64)),
        sa.Column("weights", sa.Text),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("detect_state", sa.String(16), nullable=False),
        sa.Column("track_state", sa.String(16), nullable=False),
        sa.Column("eval_state", sa.String(16), nullable=False),
        sa.Column("heartbeat", sa.Float),
        sa.Column("hota", sa.Float, nullable=False),
        sa.Column("deta", sa.Float),
        sa.Column("assa", sa.Float),
        sa.Column("idf1", sa.Float, nullable=False),
        sa.Column("mota", sa.Float, nullable=False),
        sa.Column("idsw", sa.Integer),
        sa.Column("hota_ball", sa.Float),
        sa.Column("hota_player", sa.Float),
    )
    for column in ("created", "name", "hota", "idf1", "mota", "parent", "sweep", "detector", "tracker", "state"):
        op.create_index(f"ix_runs_{column}", "runs", [column, "run"])
    op.create_table(
        "run_tags",
        sa.Column("run", sa.String(16), sa.ForeignKey("runs.run", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag", sa.String(64), primary_key=True),
    )
    op.create_index("ix_run_tags_tag", "run_tags", ["tag", "run"])
    op.create_table(
        "sweeps",
        sa.Column("sweep", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(200), **_TEXT_DEFAULTS),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("note", sa.Text, **_TEXT_DEFAULTS),
        sa.Column("search", sa.Text, **_TEXT_DEFAULTS),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("run", sa.String(16), nullable=False),
        sa.Column("tracker", sa.String(64), nullable=False),
        sa.Column("total", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_sweeps_created", "sweeps", ["created", "sweep"])
    op.create_index("ix_sweeps_name", "sweeps", ["name", "sweep"])
    op.create_table(
        "jobs",
        sa.Column("job", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(200), **_TEXT_DEFAULTS),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("note", sa.Text, **_TEXT_DEFAULTS),
        sa.Column("search", sa.Text, **_TEXT_DEFAULTS),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("model", sa.String(16), nullable=False),
        sa.Column("strategy", sa.String(32)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("finished_epochs", sa.Integer, nullable=False, server_default="0"),
        sa.Column("planned_epochs", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_jobs_created", "jobs", ["created", "job"])
    op.create_index("ix_jobs_name", "jobs", ["name", "job"])


def downgrade() -> None:
    for table in ("run_tags", "runs", "sweeps", "jobs"):
        op.drop_table(table)
