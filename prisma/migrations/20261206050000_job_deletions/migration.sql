-- A deleted job leaves a tombstone for a day, so live views (GET /v1/jobs/events) can drop it.

-- CreateTable
CREATE TABLE "job_deletions" (
    "job_id" UUID NOT NULL,
    "owner_id" UUID NOT NULL,
    "deleted_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "job_deletions_pkey" PRIMARY KEY ("job_id")
);

-- CreateIndex
CREATE INDEX "job_deletions_owner_id_deleted_at_idx" ON "job_deletions"("owner_id", "deleted_at");
