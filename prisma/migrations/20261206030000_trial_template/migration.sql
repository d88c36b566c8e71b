-- A goal job's trial that ran a shipped recipe (recipes/) names it, as the report's trials do.

-- AlterTable
ALTER TABLE "job_trials" ADD COLUMN "template" TEXT;
