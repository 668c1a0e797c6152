"""Create the notes table.

Revision ID: 4b1d7c2e9a30
Revises:
Create Date: 2026-06-01 12:00:00
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "4b1d7c2e9a30"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_sub", sa.String(length=255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notes_owner_sub_id", "notes", ["owner_sub", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_notes_owner_sub_id", table_name="notes")
    op.drop_table("notes")
