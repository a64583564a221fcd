//! Build planning and solving: DAG, cache keys, COPY/ADD, RUN orchestration
