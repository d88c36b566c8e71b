-- Goal jobs (issue 16): the search's progress, the best model so far, and every trial.

-- AlterTable
ALTER TABLE "jobs" ADD COLUMN "progress_search" JSONB,
ADD COLUMN "best_storage_key" TEXT,
ADD COLUMN "best_sha256" TEXT,
ADD COLUMN "best_size_bytes" BIGINT,
ADD COLUMN "best_trial" INTEGER,
ADD COLUMN "best_attempt" INTEGER,
ADD COLUMN "best_report" JSONB;

-- CreateTable
CREATE TABLE "job_trials" (
    "job_id" UUID NOT NULL,
    "attempt" INTEGER NOT NULL,
    "n" INTEGER NOT NULL,
    "steps" JSONB NOT NULL,
    "status" TEXT NOT NULL,
    "reason" TEXT,
    "metric_value" DOUBLE PRECISION,
    "loss" DOUBLE PRECISION,
    "latency_ratio" DOUBLE PRECISION,
    "size_ratio" DOUBLE PRECISION,
    "built" INTEGER NOT NULL,
    "cached" INTEGER NOT NULL,
    "duration_ms" INTEGER NOT NULL,
    "frontier" BOOLEAN NOT NULL DEFAULT false,
    "artifact_key" TEXT,
    "artifact_sha256" TEXT,
    "artifact_size_bytes" BIGINT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "job_trials_pkey" PRIMARY KEY ("job_id","attempt","n")
);

-- AddForeignKey
ALTER TABLE "job_trials" ADD CONSTRAINT "job_trials_job_id_fkey" FOREIGN KEY ("job_id") REFERENCES "jobs"("id") ON DELETE CASCADE ON UPDATE CASCADE;
