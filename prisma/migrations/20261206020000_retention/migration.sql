-- Retention and deletion (issue 20): expiry marks, a model's last use, the blobs waiting for deletion,
-- and indexes for "does any row still refer to this key" (src/service/db/blobs.ts).

-- AlterTable
ALTER TABLE "models" ADD COLUMN "last_used_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
ADD COLUMN "expired_at" TIMESTAMPTZ(3);

-- a model's last use so far: its upload or its latest job
UPDATE "models" m SET "last_used_at" = GREATEST(m."created_at", COALESCE((SELECT max(j."created_at") FROM "jobs" j WHERE j."model_id" = m."id"), m."created_at"));

-- AlterTable
ALTER TABLE "jobs" ADD COLUMN "artifact_expired_at" TIMESTAMPTZ(3),
ADD COLUMN "data_expired_at" TIMESTAMPTZ(3);

-- CreateTable
CREATE TABLE "orphan_blobs" (
    "key" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "orphan_blobs_pkey" PRIMARY KEY ("key")
);

-- CreateIndex
CREATE INDEX "models_storage_key_idx" ON "models"("storage_key");

-- CreateIndex
CREATE INDEX "jobs_best_storage_key_idx" ON "jobs"("best_storage_key");

-- CreateIndex
CREATE INDEX "artifacts_storage_key_idx" ON "artifacts"("storage_key");

-- CreateIndex
CREATE INDEX "job_trials_artifact_key_idx" ON "job_trials"("artifact_key");
