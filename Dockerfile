# The CRM server image used by docker-compose.yml.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/crm ./cmd/crm

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/crm /crm
ENV CRM_ADDR=:8080 CRM_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["/crm"]
CMD ["serve"]
